"""update_status: set status (active/deleted), priority or the review flag on a selection, with history."""

from __future__ import annotations

from typing import Any, Literal

from prefect import flow
from prefect.client.schemas.objects import State
from prefect.task_runners import ThreadPoolTaskRunner

import blocks.local_database  # noqa: F401 - registers the block type that ``provider`` references
from core.catalog import DEFAULT_MAX_COMPANIES, get_action
from core.selection import Selection, selection_of
from core.status_update import parse_status_update
from flows.engine import BULK_ACTION_HOOKS, BulkActionRequest, BulkActionSummary, DryRunReport, run_bulk_action

DEFAULT_PROVIDER = get_action("update_status").default_provider


@flow(
    name="update-status",
    task_runner=ThreadPoolTaskRunner(max_workers=4),  # type: ignore[arg-type]
    validate_parameters=True,
    **BULK_ACTION_HOOKS,
)
def update_status(
    selection: Selection | None = None,
    company_ids: list[int] | None = None,
    status: Literal["active", "deleted"] | None = None,
    company_priority: int | None = None,
    needs_review: bool | None = None,
    review_reason: str | None = None,
    provider: str = DEFAULT_PROVIDER,
    database: str = "default",
    created_by: str = "prefect",
    bulk_action_id: int | None = None,
    failure_threshold: float = 0.5,
    progress_every: int = 5,
    max_companies: int = DEFAULT_MAX_COMPANIES,
    takeover: bool = False,
    dry_run: bool = False,
) -> BulkActionSummary | DryRunReport | State[Any]:
    """Set status, priority or needs-review on the selected companies; every change goes into the history.

    Args:
        selection: which companies (explicit ids, a filter, another action's companies).  A filter matches
            active companies unless its ``statuses`` say otherwise (to restore deleted ones, list ``deleted``).
        company_ids: shorthand for ``selection={"ids": [...]}``.
        status: ``active`` or ``deleted`` (a soft delete: rows, history and results stay).
        company_priority: the companies' priority, between -1000 and 1000; higher runs first in scheduled work.
        needs_review: ``true`` flags the companies for review (give ``review_reason``), ``false`` clears the flag.
        review_reason: why they need review.
        provider: the block that holds this action's concurrency tag (``database-writes``).
        database: name of the company-database block.
        created_by: who asked, recorded on the bulk action.
        bulk_action_id: resume this bulk action (after a crash or cancellation); the values it started with apply.
        failure_threshold: share of failed companies above which the action ends ``failed``.
        progress_every: write progress to the database every this many batches.
        max_companies: refuse selections larger than this.
        takeover: with ``bulk_action_id``, take the action over from a flow run whose process is gone.
        dry_run: resolve the selection and report its size and a sample; write nothing.
    """
    values: dict[str, Any] = {}
    if bulk_action_id is None:  # a rerun applies what its action was started with (the engine restores it)
        wanted = {"status": status, "priority": company_priority, "needs_review": needs_review}
        values = parse_status_update({**wanted, "review_reason": review_reason}).model_dump(exclude_none=True)
    return run_bulk_action(
        BulkActionRequest(
            action="update_status",
            selection=selection_of(company_ids, selection),
            provider=provider,
            database=database,
            created_by=created_by,
            bulk_action_id=bulk_action_id,
            failure_threshold=failure_threshold,
            progress_every=progress_every,
            max_companies=max_companies,
            takeover=takeover,
            dry_run=dry_run,
            options=values,
        )
    )


if __name__ == "__main__":
    update_status()
