"""enrich_companies: research each selected company through Parallel task runs and store what was found.

Batches of 5 companies; each batch runs its 5 task runs side by side, so ``tag:<concurrency_tag>`` (batches in
flight) must be at most the provider's active-run cap divided by 5 (see ``blocks.enrichment``).
"""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.client.schemas.objects import State
from prefect.task_runners import ThreadPoolTaskRunner

import blocks.enrichment  # noqa: F401 - registers the parallel-enrichment block type for load_provider_block
from core.catalog import DEFAULT_MAX_COMPANIES, get_action
from core.selection import Selection, selection_of
from flows.engine import BULK_ACTION_HOOKS, BulkActionRequest, BulkActionSummary, DryRunReport, run_bulk_action

DEFAULT_ENRICHMENT_PROVIDER = get_action("enrich_companies").default_provider


@flow(
    name="enrich-companies",
    # threads for batches in flight; each batch adds up to 5 short-lived threads of its own for its runs
    task_runner=ThreadPoolTaskRunner(max_workers=16),  # type: ignore[arg-type]
    validate_parameters=True,
    **BULK_ACTION_HOOKS,
)
def enrich_companies(
    selection: Selection | None = None,
    company_ids: list[int] | None = None,
    provider: str = DEFAULT_ENRICHMENT_PROVIDER,
    database: str = "default",
    created_by: str = "prefect",
    priority: int = 0,
    bulk_action_id: int | None = None,
    failure_threshold: float = 0.5,
    progress_every: int = 5,
    max_companies: int = DEFAULT_MAX_COMPANIES,
    takeover: bool = False,
    dry_run: bool = False,
    shards: int = 1,
    shard_index: int | None = None,
    budget_usd: float | None = None,
    allow_unpriced: bool = False,
) -> BulkActionSummary | DryRunReport | State[Any]:
    """Enrich the companies from their websites: products, ownership, activity, contacts, outreach emails.

    Args:
        selection: which companies to enrich: explicit ids, a filter over the company table, or the companies of
            another bulk action by outcome, plus a limit and an order (see the README).  Leave it empty with
            ``bulk_action_id`` to resume that action.
        company_ids: shorthand for ``selection={"ids": [...]}`` (small hand-picked sets).
        provider: enrichment block as ``<block-type>/<name>``, e.g. ``parallel-enrichment/default``.
        database: name of the company-database block.
        created_by: who asked, recorded on the bulk action.
        priority: recorded on the bulk action (higher runs first in scheduled work).
        bulk_action_id: rerun this bulk action (after a crash or cancellation) from its checkpoints.
        failure_threshold: share of failed companies above which the action ends ``failed``.
        progress_every: write progress to the database every this many batches.
        max_companies: refuse selections larger than this.
        takeover: with ``bulk_action_id``, take the action over from a flow run whose process is gone.
        dry_run: resolve the selection and report its size and a sample; write nothing, call nothing.
        shards: spread the action over this many child flow runs on the work pool (several workers).
        shard_index: set by the parent on each child; with ``bulk_action_id`` and ``takeover``, reruns one shard.
        budget_usd: the most this action may spend, USD: each Parallel run's price is reserved before it is
            created, so no run starts that could pass it; reaching it pauses the action (resume with a raised
            budget).  With ``bulk_action_id``, sets a new budget.  Failed runs cost nothing.
        allow_unpriced: run a processor that has no price (its runs are recorded at $0, marked unpriced);
            otherwise such a run is refused before it starts.
    """
    return run_bulk_action(
        BulkActionRequest(
            action="enrich_companies",
            selection=selection_of(company_ids, selection),
            provider=provider,
            database=database,
            created_by=created_by,
            priority=priority,
            bulk_action_id=bulk_action_id,
            failure_threshold=failure_threshold,
            progress_every=progress_every,
            max_companies=max_companies,
            takeover=takeover,
            dry_run=dry_run,
            shards=shards,
            shard_index=shard_index,
            budget_usd=budget_usd,
            allow_unpriced=allow_unpriced,
        )
    )


if __name__ == "__main__":
    enrich_companies()
