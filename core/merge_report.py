"""A merge's report: what became of each cluster it visited (merged, refused, already merged, excluded, ...).

The merge's outcome rows (one per cluster, on its winner) say it in their status and detail (``core.merge``'s
``MergePlan.describe``); this reads them back per cluster for the flow's artifacts.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.dedup_tables import DedupCluster
from core.merge import ALREADY_PREFIX, EXCLUDED_PREFIX, REFUSED_PREFIX
from core.schema import BulkActionOutcome, OutcomeStatus


@dataclass(frozen=True)
class ClusterOutcome:
    cluster_id: int | None
    winner_id: int
    size: int | None
    result: str
    detail: str


def verdict_of(status: OutcomeStatus, detail: str | None) -> str:
    """What became of a cluster, from its winner's outcome in the merge."""
    text = detail or ""
    if status is OutcomeStatus.SUCCEEDED:
        return "merged"
    if status is OutcomeStatus.FAILED:
        return "failed"
    if status is OutcomeStatus.PENDING:
        return "pending"
    for prefix, name in (
        (REFUSED_PREFIX, "refused"),
        (ALREADY_PREFIX, "already merged"),
        (EXCLUDED_PREFIX, "excluded"),
    ):
        if text.startswith(prefix):
            return name
    return "skipped"


def merge_outcomes(session: Session, merge_id: int, sweep_id: int) -> list[ClusterOutcome]:
    """Every cluster a merge visited, with what became of it, in the merge's order."""
    rows = session.execute(
        select(
            BulkActionOutcome.company_id,
            BulkActionOutcome.status,
            BulkActionOutcome.detail,
            DedupCluster.id,
            DedupCluster.size,
        )
        .outerjoin(
            DedupCluster,
            (DedupCluster.winner_id == BulkActionOutcome.company_id) & (DedupCluster.bulk_action_id == sweep_id),
        )
        .where(BulkActionOutcome.bulk_action_id == merge_id)
        .order_by(BulkActionOutcome.position)
    ).all()
    return [
        ClusterOutcome(cluster_id, winner, size, verdict_of(status, detail), detail or "")
        for winner, status, detail, cluster_id, size in rows
    ]
