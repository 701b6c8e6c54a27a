"""Undoing a merge for rollback: put its ``merge_moves`` back and mark its clusters ``rolled_back``.

Rollback (``core.rollback``, ``tasks.rollback``) restores the fields from the history and undoes the moves here
(:func:`plan_merge_undo`, :func:`apply_merge_undo`).

A moved score row goes back to its loser unless it was deleted, moved or rescored since (its snapshot differs),
or the loser has a score of its own for it again; a closed dead job is reopened unless it was pruned or changed
since.  Such a move is a conflict: it stays, and the rollback's outcome says why.  The rule the moves came from
is ``core.merge``'s; they were written by ``core.merge_store``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import cast

from sqlalchemy import Table, select, update
from sqlalchemy.orm import Session

from core.dedup_tables import ClusterStatus, DedupCluster, MergeMove
from core.merge import (
    CLOSED,
    DEAD_JOBS_TABLE,
    MERGE_ACTION,
    MOVED,
    SCORE_SNAPSHOT,
    SCORES_TABLE,
    StaleMergePlanError,
    score_snapshot,
)
from core.schema import BulkAction, CompanyScore, DeadJob, DeadJobStatus, utcnow
from core.store import chunked

_scores = cast(Table, CompanyScore.__table__)
_jobs = cast(Table, DeadJob.__table__)
_clusters = cast(Table, DedupCluster.__table__)
_moves = cast(Table, MergeMove.__table__)


@dataclass(frozen=True)
class MoveUndo:
    """One ``merge_moves`` row to put back, or the reason it cannot be (``conflict``)."""

    move_id: int
    table_name: str
    row_id: int
    kind: str
    loser_id: int
    winner_id: int | None
    before: str | None
    conflict: str | None = None

    @property
    def label(self) -> str:
        return f"{self.table_name} {self.row_id}"


@dataclass
class MergeUndo:
    """For one rollback batch of a merge: the moves to put back per loser, and the clusters per winner."""

    moves: dict[int, list[MoveUndo]] = field(default_factory=dict)
    clusters: dict[int, list[int]] = field(default_factory=dict)

    @property
    def has_work(self) -> bool:
        return bool(self.clusters) or any(u.conflict is None for us in self.moves.values() for u in us)

    def done_for(self, company_id: int) -> list[str]:
        """What the rollback puts back for the company, in words for its outcome."""
        undos = [u for u in self.moves.get(company_id, []) if u.conflict is None]
        words: list[str] = []
        moved = sum(u.kind == MOVED for u in undos)
        reopened = sum(u.kind == CLOSED for u in undos)
        if moved:
            words.append(f"moved back {moved} score rows")
        if reopened:
            words.append(f"reopened {reopened} dead jobs")
        words.extend(f"cluster {c} rolled back" for c in self.clusters.get(company_id, []))
        return words

    def conflicts_for(self, company_id: int) -> list[str]:
        return [f"{u.label}: {u.conflict}" for u in self.moves.get(company_id, []) if u.conflict is not None]


def plan_merge_undo(session: Session, merge_id: int, company_ids: Sequence[int]) -> MergeUndo:
    """What rolling back merge ``merge_id`` puts back for ``company_ids`` (nothing if it is not a merge)."""
    record = session.get(BulkAction, merge_id)
    undo = MergeUndo()
    if record is None or record.action != MERGE_ACTION:
        return undo
    ids = list(company_ids)
    moves = session.execute(
        select(MergeMove)
        .where(MergeMove.bulk_action_id == merge_id, MergeMove.from_company_id.in_(ids), MergeMove.undone_by.is_(None))
        .order_by(MergeMove.id)
    ).scalars()
    found = list(moves)
    scores = {m.row_id for m in found if m.table_name == SCORES_TABLE}
    jobs = {m.row_id for m in found if m.table_name == DEAD_JOBS_TABLE}
    score_now = _scores_now(session, sorted(scores))
    jobs_now = _jobs_now(session, sorted(jobs))
    loser_keys = _score_keys(session, sorted({m.from_company_id for m in found if m.table_name == SCORES_TABLE}))
    for move in found:
        if move.table_name == SCORES_TABLE:
            conflict = _score_conflict(move, score_now.get(move.row_id), loser_keys)
        else:
            conflict = _job_conflict(jobs_now.get(move.row_id))
        undo.moves.setdefault(move.from_company_id, []).append(
            MoveUndo(
                move.id,
                move.table_name,
                move.row_id,
                move.kind,
                move.from_company_id,
                move.to_company_id,
                move.before,
                conflict,
            )
        )
    for cluster_id, winner_id in session.execute(
        select(DedupCluster.id, DedupCluster.winner_id).where(
            DedupCluster.merged_by == merge_id,
            DedupCluster.status == ClusterStatus.MERGED,
            DedupCluster.winner_id.in_(ids),
        )
    ):
        undo.clusters.setdefault(winner_id, []).append(cluster_id)
    return undo


def _scores_now(session: Session, ids: Sequence[int]) -> dict[int, tuple[int, str]]:
    found: dict[int, tuple[int, str]] = {}
    columns = [_scores.c[c] for c in SCORE_SNAPSHOT]
    for part in chunked(list(ids)):
        for row in session.execute(select(_scores.c.id, _scores.c.company_id, *columns).where(_scores.c.id.in_(part))):
            found[row[0]] = (row[1], score_snapshot(row[2:]))
    return found


def _jobs_now(session: Session, ids: Sequence[int]) -> dict[int, DeadJobStatus]:
    found: dict[int, DeadJobStatus] = {}
    for part in chunked(list(ids)):
        found.update(session.execute(select(DeadJob.id, DeadJob.status).where(DeadJob.id.in_(part))).tuples().all())
    return found


def _score_keys(session: Session, company_ids: Sequence[int]) -> set[tuple[int, str, str, str]]:
    keys: set[tuple[int, str, str, str]] = set()
    for part in chunked(list(company_ids)):
        keys.update(
            session.execute(
                select(
                    CompanyScore.company_id, CompanyScore.criterion, CompanyScore.provider, CompanyScore.model
                ).where(CompanyScore.company_id.in_(part))
            )
            .tuples()
            .all()
        )
    return keys


def _score_conflict(
    move: MergeMove, now: tuple[int, str] | None, loser_keys: set[tuple[int, str, str, str]]
) -> str | None:
    if now is None:
        return "deleted since the merge"
    company_id, snapshot = now
    if company_id != move.to_company_id:
        return f"moved since to company {company_id}"
    if snapshot != move.before:
        by = json.loads(snapshot).get("bulk_action_id")
        which = f" by bulk action {by}" if by is not None else ""
        return f"rescored since the merge{which}: kept with company {company_id}"
    key = json.loads(snapshot)
    if (move.from_company_id, key["criterion"], key["provider"], key["model"]) in loser_keys:
        return f"company {move.from_company_id} has a score of its own for it again"
    return None


def _job_conflict(status: DeadJobStatus | None) -> str | None:
    if status is None:
        return "deleted since the merge (pruned by cleanup)"
    if status is not DeadJobStatus.DISCARDED:
        return f"{status.value} since the merge"
    return None


def apply_merge_undo(session: Session, undo: MergeUndo, rollback_id: int) -> None:
    """Put back the moves without conflicts and roll the clusters back, in the rollback batch's transaction."""
    now = utcnow()
    for undos in undo.moves.values():
        for u in undos:
            if u.conflict is not None:
                continue
            if u.table_name == SCORES_TABLE:
                done = session.execute(
                    update(_scores)
                    .where(_scores.c.id == u.row_id, _scores.c.company_id == u.winner_id)
                    .values(company_id=u.loser_id)
                )
            else:
                before = json.loads(u.before or "{}")
                resolved = before.get("resolved_at")
                done = session.execute(
                    update(_jobs)
                    .where(_jobs.c.id == u.row_id, _jobs.c.status == DeadJobStatus.DISCARDED)
                    .values(
                        status=DeadJobStatus(before["status"]),
                        resolved_at=datetime.fromisoformat(resolved) if resolved else None,
                    )
                )
            if done.rowcount != 1:  # type: ignore[attr-defined]
                raise StaleMergePlanError(f"{u.label} changed while its rollback was planned: run it again")
            session.execute(update(_moves).where(_moves.c.id == u.move_id).values(undone_by=rollback_id))
    cluster_ids = [c for ids in undo.clusters.values() for c in ids]
    if cluster_ids:
        session.execute(
            update(_clusters)
            .where(_clusters.c.id.in_(cluster_ids), _clusters.c.status == ClusterStatus.MERGED)
            .values(
                status=ClusterStatus.ROLLED_BACK,
                reason=f"merge rolled back by bulk action {rollback_id}",
                updated_at=now,
            )
        )


def rolled_back_merge(session: Session, bulk_action_id: int) -> int | None:
    """The merge that bulk action ``bulk_action_id`` rolled back, if it is a rollback of a merge."""
    record = session.get(BulkAction, bulk_action_id)
    if record is None or record.action != "rollback":
        return None
    target = ((record.parameters or {}).get("options") or {}).get("rollback_of")
    if target is None:
        return None
    merged = session.get(BulkAction, int(target))
    return merged.id if merged is not None and merged.action == MERGE_ACTION else None
