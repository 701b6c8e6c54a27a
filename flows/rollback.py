"""rollback: undo another bulk action's changes to companies, field by field, from the change history.

Works for every action that writes through the history: ``reclassify``, ``update_status``, an import in update
mode, and another rollback (which redoes what that rollback undid).  A field changed again since, by a later
action or outside any, is a conflict: kept unless ``force``, and listed per company and field in the
``rollback-<id>-conflicts`` table artifact and in the outcome rows.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact
from prefect.client.schemas.objects import State
from prefect.task_runners import ThreadPoolTaskRunner
from sqlalchemy import select

import blocks.local_database  # noqa: F401 - registers the block type that ``provider`` references
from blocks.loading import load_database
from core.catalog import DEFAULT_MAX_COMPANIES, get_action
from core.errors import InputError
from core.schema import BulkAction, BulkActionOutcome
from core.selection import ActionCompanies, Selection
from flows.action_end import artifact_key
from flows.engine import BULK_ACTION_HOOKS, BulkActionRequest, BulkActionSummary, DryRunReport, run_bulk_action
from tasks.rollback import CONFLICT_PREFIX

DEFAULT_PROVIDER = get_action("rollback").default_provider


@flow(
    name="rollback",
    task_runner=ThreadPoolTaskRunner(max_workers=4),  # type: ignore[arg-type]
    validate_parameters=True,
    **BULK_ACTION_HOOKS,
)
def rollback(
    rollback_of: int | None = None,
    force: bool = False,
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
    """Restore every field bulk action ``rollback_of`` changed to its value before that action.

    Args:
        rollback_of: the bulk action to undo.
        force: also overwrite fields changed again since (by a later action or outside any).
        provider: the block that holds this action's concurrency tag (``database-writes``).
        database: name of the company-database block.
        created_by: who asked, recorded on the bulk action.
        bulk_action_id: resume this rollback (after a crash or cancellation).
        failure_threshold: share of failed companies above which the action ends ``failed``.
        progress_every: write progress to the database every this many batches.
        max_companies: refuse rollbacks of larger actions than this.
        takeover: with ``bulk_action_id``, take the action over from a flow run whose process is gone.
        dry_run: report the companies the rollback would visit; write nothing.
    """
    selection = None
    if bulk_action_id is None:
        if rollback_of is None:
            raise InputError("say which bulk action to roll back: rollback_of=<bulk action id>")
        with load_database(database).read_session() as session:
            if session.get(BulkAction, rollback_of) is None:
                raise InputError(f"bulk action {rollback_of} does not exist")
        selection = Selection(from_action=ActionCompanies(bulk_action_id=rollback_of, outcome="all"))
    result = run_bulk_action(
        BulkActionRequest(
            action="rollback",
            selection=selection,
            provider=provider,
            database=database,
            created_by=created_by,
            bulk_action_id=bulk_action_id,
            failure_threshold=failure_threshold,
            progress_every=progress_every,
            max_companies=max_companies,
            takeover=takeover,
            dry_run=dry_run,
            options={"rollback_of": rollback_of, "force": force},
        )
    )
    if isinstance(result, BulkActionSummary):
        _publish_conflicts(database, result.bulk_action_id)
    return result


def _publish_conflicts(database: str, bulk_action_id: int) -> None:
    """The fields kept because they changed again since, per company: what a reviewer decides about."""
    with load_database(database).read_session() as session:
        rows = session.execute(
            select(BulkActionOutcome.company_id, BulkActionOutcome.detail)
            .where(
                BulkActionOutcome.bulk_action_id == bulk_action_id,
                BulkActionOutcome.detail.contains(f"{CONFLICT_PREFIX}s kept"),
            )
            .order_by(BulkActionOutcome.position)
            .limit(1000)
        ).all()
    if not rows:
        return
    table = [
        {"company": company_id, "field": part.split(": ", 1)[0].strip(), "why kept": part.split(": ", 1)[-1]}
        for company_id, detail in rows
        for part in (detail or "").split(f"{CONFLICT_PREFIX}s kept: ", 1)[-1].split("; ")
    ]
    create_table_artifact(
        table,
        key=artifact_key("rollback", bulk_action_id, "conflicts"),
        description=f"rollback {bulk_action_id}: fields kept because they changed again (rerun with force=true)",
    )
    get_run_logger().warning(
        "rollback %d kept %d conflicting fields; see its conflicts artifact", bulk_action_id, len(table)
    )


if __name__ == "__main__":
    rollback()
