"""reclassify: sector (NACE section), subsector (division) and business model from the versioned taxonomy.

Local mode runs the deterministic rules of ``core.classify_rules`` (the NACE code first, keywords of the
industry and activity text otherwise): no API, no cost, thousands of companies a second.  Only outdated
companies are reclassified unless ``force``; ``target_column`` reclassifies one field.  Every changed field gets
a ``company_history`` row in the transaction of the change, so ``rollback`` can undo the action.
"""

from __future__ import annotations

from typing import Any, Literal

from prefect import flow
from prefect.client.schemas.objects import State
from prefect.task_runners import ThreadPoolTaskRunner

import blocks.local_database  # noqa: F401 - registers the block type that ``provider`` references
from core.catalog import DEFAULT_MAX_COMPANIES, get_action
from core.reclassify import check_target_column
from core.selection import Selection, selection_of
from flows.engine import BULK_ACTION_HOOKS, BulkActionRequest, BulkActionSummary, DryRunReport, run_bulk_action

DEFAULT_PROVIDER = get_action("reclassify").default_provider


@flow(
    name="reclassify",
    task_runner=ThreadPoolTaskRunner(max_workers=4),  # type: ignore[arg-type]
    validate_parameters=True,
    **BULK_ACTION_HOOKS,
)
def reclassify(
    selection: Selection | None = None,
    company_ids: list[int] | None = None,
    mode: Literal["local"] = "local",
    force: bool = False,
    target_column: Literal["sector", "subsector", "business_model"] | None = None,
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
    """Classify the selected companies' sector, subsector and business model, with history.

    Args:
        selection: which companies (explicit ids, a filter, another action's companies); its ``limit`` caps
            how many.
        company_ids: shorthand for ``selection={"ids": [...]}``.
        mode: ``local``: deterministic rules from the NACE code and the activity text (no provider, no cost).
        force: reclassify companies whose classification is current (same taxonomy version and input text).
        target_column: reclassify only this field (column mode); the others keep their values.
        provider: the block that holds this action's concurrency tag (``database-writes``).
        database: name of the company-database block.
        created_by: who asked, recorded on the bulk action.
        bulk_action_id: resume this bulk action (after a crash or cancellation); the options it started with apply.
        failure_threshold: share of failed companies above which the action ends ``failed``.
        progress_every: write progress to the database every this many batches.
        max_companies: refuse selections larger than this.
        takeover: with ``bulk_action_id``, take the action over from a flow run whose process is gone.
        dry_run: resolve the selection and report its size and a sample; write nothing.
    """
    check_target_column(target_column)
    options: dict[str, Any] = {"mode": mode, "force": force}
    if target_column is not None:
        options["target_column"] = target_column
    return run_bulk_action(
        BulkActionRequest(
            action="reclassify",
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
            options=options,
        )
    )


if __name__ == "__main__":
    reclassify()
