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
from flows.engine import BULK_ACTION_HOOKS, BulkActionRequest, BulkActionSummary, run_bulk_action

DEFAULT_ENRICHMENT_PROVIDER = get_action("enrich_companies").default_provider


@flow(
    name="enrich-companies",
    # threads for batches in flight; each batch adds up to 5 short-lived threads of its own for its runs
    task_runner=ThreadPoolTaskRunner(max_workers=16),  # type: ignore[arg-type]
    validate_parameters=True,
    **BULK_ACTION_HOOKS,
)
def enrich_companies(
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
) -> BulkActionSummary | State[Any]:
    """Enrich the companies from their websites: products, ownership, activity, contacts, outreach emails.

    Args:
        company_ids: companies to enrich; leave empty together with ``bulk_action_id`` to resume that action.
        provider: enrichment block as ``<block-type>/<name>``, e.g. ``parallel-enrichment/default``.
        database: name of the company-database block.
        created_by: who asked, recorded on the bulk action.
        priority: recorded on the bulk action (higher runs first in scheduled work).
        bulk_action_id: rerun this bulk action (after a crash or cancellation) from its checkpoints.
        failure_threshold: share of failed companies above which the action ends ``failed``.
        progress_every: write progress to the database every this many batches.
        max_companies: refuse selections larger than this.
        takeover: with ``bulk_action_id``, take the action over from a flow run whose process is gone.
    """
    return run_bulk_action(
        BulkActionRequest(
            action="enrich_companies",
            company_ids=company_ids or [],
            provider=provider,
            database=database,
            created_by=created_by,
            priority=priority,
            bulk_action_id=bulk_action_id,
            failure_threshold=failure_threshold,
            progress_every=progress_every,
            max_companies=max_companies,
            takeover=takeover,
        )
    )


if __name__ == "__main__":
    enrich_companies()
