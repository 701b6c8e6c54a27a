"""generate_embeddings: a 384-d vector for each selected company, skipping those whose text is unchanged."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.client.schemas.objects import State
from prefect.task_runners import ThreadPoolTaskRunner

from core.catalog import DEFAULT_MAX_COMPANIES, get_action
from core.selection import Selection, selection_of
from flows.engine import BULK_ACTION_HOOKS, BulkActionRequest, BulkActionSummary, DryRunReport, run_bulk_action

DEFAULT_EMBEDDING_PROVIDER = get_action("generate_embeddings").default_provider


@flow(
    name="generate-embeddings",
    task_runner=ThreadPoolTaskRunner(max_workers=16),  # type: ignore[arg-type]
    validate_parameters=True,
    **BULK_ACTION_HOOKS,
)
def generate_embeddings(
    selection: Selection | None = None,
    company_ids: list[int] | None = None,
    provider: str = DEFAULT_EMBEDDING_PROVIDER,
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
    """Embed the companies' profile text with the chosen embedding provider block.

    Args:
        selection: which companies to embed: explicit ids, a filter over the company table, or the companies of
            another bulk action by outcome, plus a limit and an order (see the README).  Leave it empty with
            ``bulk_action_id`` to resume that action.
        company_ids: shorthand for ``selection={"ids": [...]}`` (small hand-picked sets).
        provider: embedding block as ``<block-type>/<name>``, e.g. ``workers-ai-embeddings/default``.
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
        budget_usd: the most this action may spend, USD (Workers AI and OpenAI-compatible providers bill input
            tokens; the local model is free); no call starts whose worst case could pass it, and reaching it
            pauses the action (resume with a raised budget).  With ``bulk_action_id``, sets a new budget.
        allow_unpriced: run a paid model that has no price (its calls are recorded at $0, marked unpriced);
            otherwise such a run is refused before it starts.
    """
    return run_bulk_action(
        BulkActionRequest(
            action="generate_embeddings",
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
    generate_embeddings()
