"""How a bulk action ends: the final recount, the end status and the summary artifact.

Shared by a single flow run, the parent of a sharded action and the shard that finds itself last after its
parent died, so every path ends an action the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

from prefect import get_run_logger
from prefect.artifacts import create_table_artifact

from blocks.database import CompanyDatabase
from core.schema import BulkActionStatus
from core.store import OutcomeCounts, error_summary, set_status, write_progress


def artifact_key(action: str, bulk_action_id: int, what: str) -> str:
    return f"{action.replace('_', '-')}-{bulk_action_id}-{what}"


@dataclass(frozen=True)
class ActionEnd:
    status: BulkActionStatus
    reason: str | None
    counts: OutcomeCounts


def finish_action(
    db: CompanyDatabase,
    bulk_action_id: int,
    *,
    failure_threshold: float,
    cancelled: str | None = None,
    failed: str | None = None,
    paused: str | None = None,
    progress_counts: OutcomeCounts | None = None,
) -> ActionEnd:
    """Recount the outcome rows, decide the end status and record it, in one transaction.

    ``cancelled`` / ``failed`` / ``paused`` are reasons that decide the status whatever the counts say (a
    cancelled flow run, a shard that crashed, a budget reached with companies still pending); otherwise the
    share of failed companies against ``failure_threshold`` does.
    ``progress_counts`` are the counts the batches reported, checked against the rows.
    """
    with db.session() as session:
        counts = write_progress(session, bulk_action_id)
        if progress_counts is not None and progress_counts != counts:
            get_run_logger().warning(
                "bulk action %d: progress counted %s, the outcome rows say %s", bulk_action_id, progress_counts, counts
            )
        if cancelled is not None:
            status, reason = BulkActionStatus.CANCELLED, cancelled
        elif failed is not None:
            status, reason = BulkActionStatus.FAILED, failed
        elif paused is not None and counts.processed < counts.total:
            status, reason = BulkActionStatus.PAUSED, paused
        elif counts.total and counts.failed / counts.total > failure_threshold:
            status = BulkActionStatus.FAILED
            reason = (
                f"{counts.failed} of {counts.total} companies failed, "
                f"more than the threshold of {failure_threshold:.0%}"
            )
        else:
            status, reason = BulkActionStatus.COMPLETED, None
        set_status(session, bulk_action_id, status, reason=reason, error_summary=error_summary(session, bulk_action_id))
    return ActionEnd(status, reason, counts)


def publish_summary(rows: list[dict[str, object]], action: str, bulk_action_id: int, end: ActionEnd) -> None:
    create_table_artifact(
        rows,
        key=artifact_key(action, bulk_action_id, "summary"),
        description=f"Bulk action {bulk_action_id} ({action}): {end.status.value}",
    )
