"""Merging reviewed duplicate clusters in the database: choose a sweep's clusters, plan their merges, write them.

The rule (what is refused, filled, moved and closed) is ``core.merge``'s; this module does the reads that feed it
and the writes that carry out its plans: the clusters' status, the losers' and the winner's changes (as
``company_history`` rows of kind ``merge``), the moved score rows and closed dead jobs, each recorded as a
``merge_moves`` row for rollback (``core.merge_undo``).

Plans are made in a read transaction and written later, with the batch's outcomes; the write checks that what
it read is still so (the cluster's status, every member's ``updated_at``, each moved row) and raises
:class:`StaleMergePlanError` if not, so two merges racing over one cluster never both apply it.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, select, update
from sqlalchemy.orm import Session

from core.dedup_tables import ClusterStatus, DedupCluster, DedupClusterMember, MergeMove
from core.errors import InputError
from core.history import apply_changes, encode_value
from core.merge import (
    CLOSED,
    DEAD_JOBS_TABLE,
    FILL_FIELDS,
    MERGE_KIND,
    MOVED,
    OPEN_DEAD_JOBS,
    SCORE_SNAPSHOT,
    SCORES_TABLE,
    SWEEP_ACTION,
    JobClose,
    Member,
    MergePlan,
    ScoreMove,
    StaleMergePlanError,
    Verdict,
    check_merge_target,
    fills_for,
    order_losers,
    refusal,
    score_moves_for,
    score_snapshot,
)
from core.schema import BulkAction, Company, CompanyScore, CompanyStatus, DeadJob, DeadJobStatus, utcnow
from core.store import chunked, insert_rows

_companies = cast(Table, Company.__table__)
_scores = cast(Table, CompanyScore.__table__)
_jobs = cast(Table, DeadJob.__table__)
_clusters = cast(Table, DedupCluster.__table__)
_moves = cast(Table, MergeMove.__table__)


@dataclass(frozen=True)
class ClusterChoice:
    """The clusters a merge takes (cluster id → winner) and those it marks excluded first."""

    sweep_id: int
    chosen: dict[int, int]
    exclude: list[int]
    #: excluded clusters that cannot be excluded (merged already: roll its merge back instead)
    not_excludable: list[int]
    #: named clusters that were excluded before: naming them takes them back in (``proposed``)
    reinstate: list[int]

    @property
    def winners(self) -> list[int]:
        return list(dict.fromkeys(self.chosen.values()))


def choose_clusters(
    session: Session, sweep_id: int, cluster_ids: Sequence[int] | None, exclude_ids: Sequence[int] | None
) -> ClusterChoice:
    """Which clusters of the sweep a merge takes: the named ones, or every ``proposed`` one; minus the excluded.

    Raises ``InputError`` for a sweep that is not a ``dedup_sweep`` bulk action, a cluster that is not the sweep's,
    or a cluster both named and excluded.
    """
    record = session.get(BulkAction, sweep_id)
    if record is None:
        raise InputError(f"bulk action {sweep_id} does not exist")
    if record.action != SWEEP_ACTION:
        raise InputError(f"bulk action {sweep_id} is a {record.action!r} action, not a {SWEEP_ACTION}")
    named = list(dict.fromkeys(cluster_ids or []))
    excluded = list(dict.fromkeys(exclude_ids or []))
    both = sorted(set(named) & set(excluded))
    if both:
        raise InputError(f"clusters both named and excluded: {both}")
    known = _cluster_rows(session, sweep_id, [*named, *excluded])
    unknown = [c for c in [*named, *excluded] if c not in known]
    if unknown:
        raise InputError(f"clusters not found in sweep {sweep_id}: {unknown}")
    exclude = [c for c in excluded if known[c][1] != ClusterStatus.MERGED]
    not_excludable = [c for c in excluded if known[c][1] == ClusterStatus.MERGED]
    if cluster_ids is not None:
        chosen = {c: known[c][0] for c in sorted(named)}
        reinstate = [c for c in sorted(named) if known[c][1] == ClusterStatus.EXCLUDED]
    else:
        rows = session.execute(
            select(DedupCluster.id, DedupCluster.winner_id)
            .where(DedupCluster.bulk_action_id == sweep_id, DedupCluster.status == ClusterStatus.PROPOSED)
            .order_by(DedupCluster.id)
        ).all()
        chosen = {cid: winner for cid, winner in rows if cid not in set(excluded)}
        reinstate = []
    return ClusterChoice(sweep_id, chosen, exclude, not_excludable, reinstate)


def _cluster_rows(session: Session, sweep_id: int, ids: Sequence[int]) -> dict[int, tuple[int, str]]:
    found: dict[int, tuple[int, str]] = {}
    for part in chunked(list(ids)):
        rows = session.execute(
            select(DedupCluster.id, DedupCluster.winner_id, DedupCluster.status).where(
                DedupCluster.bulk_action_id == sweep_id, DedupCluster.id.in_(part)
            )
        )
        found.update({cid: (winner, status) for cid, winner, status in rows})
    return found


def set_cluster_status(session: Session, cluster_ids: Sequence[int], status: str, reason: str | None) -> None:
    """Mark clusters (a reviewer's exclusion, or a named cluster taken back in); never touches a merged one."""
    for part in chunked(list(cluster_ids)):
        session.execute(
            update(_clusters)
            .where(_clusters.c.id.in_(part), _clusters.c.status != ClusterStatus.MERGED)
            .values(status=status, reason=reason, updated_at=utcnow())
        )


def plan_merges(
    session: Session, sweep_id: int, winner_ids: Sequence[int], *, as_proposed: Collection[int] = ()
) -> dict[int, MergePlan]:
    """Per winner, the plan for its cluster of the sweep (the rule is ``core.merge``'s); reads only.

    ``as_proposed``: clusters to plan as if they were ``proposed`` (a dry run of named, excluded clusters).
    """
    clusters: dict[int, list[Any]] = {}
    for part in chunked(list(winner_ids)):
        for row in session.execute(
            select(
                DedupCluster.id,
                DedupCluster.winner_id,
                DedupCluster.status,
                DedupCluster.reason,
                DedupCluster.merged_by,
            )
            .where(DedupCluster.bulk_action_id == sweep_id, DedupCluster.winner_id.in_(part))
            .order_by(DedupCluster.id)
        ):
            clusters.setdefault(row.winner_id, []).append(row)
    plans: dict[int, MergePlan] = {}
    live: dict[int, Any] = {}
    for winner_id in winner_ids:
        rows = clusters.get(winner_id, [])
        if len(rows) != 1:
            what = "no cluster" if not rows else f"{len(rows)} clusters ({', '.join(str(r.id) for r in rows)})"
            reason = f"sweep {sweep_id} has {what} led by company {winner_id}"
            plans[winner_id] = MergePlan(winner_id, Verdict.NOT_FOUND, reason)
            continue
        row = rows[0]
        status = ClusterStatus.PROPOSED if row.id in as_proposed else row.status
        if status == ClusterStatus.MERGED:
            plans[winner_id] = MergePlan(
                winner_id, Verdict.ALREADY_MERGED, cluster_id=row.id, cluster_status=status, merged_by=row.merged_by
            )
        elif status == ClusterStatus.EXCLUDED:
            plans[winner_id] = MergePlan(
                winner_id, Verdict.EXCLUDED, row.reason or "excluded", cluster_id=row.id, cluster_status=status
            )
        else:
            live[winner_id] = row
    members = _members(session, [row.id for row in live.values()])
    losers_of = {w: [m for m in members.get(row.id, []) if m.company_id != w] for w, row in live.items()}
    loser_ids = [m.company_id for ms in losers_of.values() for m in ms]
    score_sets = _score_sets(session, list(live))
    score_rows = _score_rows(session, loser_ids)
    jobs = _open_jobs(session, loser_ids)
    for winner_id, row in live.items():
        cluster_members = members.get(row.id, [])
        read_at = {m.company_id: m.updated_at for m in cluster_members}
        refused = refusal(cluster_members, winner_id)
        if refused is not None:
            plans[winner_id] = MergePlan(winner_id, Verdict.REFUSE, refused, row.id, row.status, read_at=read_at)
            continue
        winner = next(m for m in cluster_members if m.company_id == winner_id)
        losers = order_losers(losers_of[winner_id])
        fills, sources = fills_for(winner.values, losers)
        moves = score_moves_for(score_sets.get(winner_id, set()), losers, score_rows)
        closes = [job for loser in losers for job in jobs.get(loser.company_id, [])]
        plans[winner_id] = MergePlan(
            winner_id,
            Verdict.MERGE,
            cluster_id=row.id,
            cluster_status=row.status,
            losers=tuple(m.company_id for m in losers),
            fills=fills,
            filled_from=sources,
            score_moves=tuple(moves),
            job_closes=tuple(closes),
            read_at=read_at,
        )
    return plans


def _members(session: Session, cluster_ids: Sequence[int]) -> dict[int, list[Member]]:
    seen: dict[int, list[tuple[int, bool, datetime]]] = {}
    for part in chunked(list(cluster_ids)):
        for cluster_id, company_id, is_winner, seen_at in session.execute(
            select(
                DedupClusterMember.cluster_id,
                DedupClusterMember.company_id,
                DedupClusterMember.is_winner,
                DedupClusterMember.seen_updated_at,
            ).where(DedupClusterMember.cluster_id.in_(part))
        ):
            seen.setdefault(cluster_id, []).append((company_id, is_winner, seen_at))
    ids = sorted({cid for rows in seen.values() for cid, _, _ in rows})
    columns = [_companies.c[f] for f in FILL_FIELDS]
    current: dict[int, Any] = {}
    for part in chunked(ids):
        for row in session.execute(
            select(Company.id, Company.status, Company.merged_into_id, Company.updated_at, *columns).where(
                Company.id.in_(part)
            )
        ):
            current[row[0]] = row
    members: dict[int, list[Member]] = {}
    for cluster_id, rows in seen.items():
        for company_id, is_winner, seen_at in sorted(rows):
            now = current.get(company_id)
            if now is None:
                members.setdefault(cluster_id, []).append(Member(company_id, is_winner, seen_at))
                continue
            members.setdefault(cluster_id, []).append(
                Member(
                    company_id,
                    is_winner,
                    seen_at,
                    exists=True,
                    status=now[1],
                    merged_into_id=now[2],
                    updated_at=now[3],
                    values=dict(zip(FILL_FIELDS, now[4:], strict=True)),
                )
            )
    return members


def _score_sets(session: Session, company_ids: Sequence[int]) -> dict[int, set[tuple[str, str]]]:
    sets: dict[int, set[tuple[str, str]]] = {}
    for part in chunked(list(company_ids)):
        for company_id, provider, model in session.execute(
            select(CompanyScore.company_id, CompanyScore.provider, CompanyScore.model)
            .where(CompanyScore.company_id.in_(part))
            .distinct()
        ):
            sets.setdefault(company_id, set()).add((provider, model))
    return sets


def _score_rows(session: Session, company_ids: Sequence[int]) -> dict[int, list[tuple[int, str, str, str]]]:
    rows: dict[int, list[tuple[int, str, str, str]]] = {}
    columns = [_scores.c[c] for c in SCORE_SNAPSHOT]
    for part in chunked(list(company_ids)):
        for row in session.execute(
            select(_scores.c.id, _scores.c.company_id, *columns)
            .where(_scores.c.company_id.in_(part))
            .order_by(_scores.c.id)
        ):
            snapshot = score_snapshot(row[2:])
            rows.setdefault(row.company_id, []).append((row.id, row.provider, row.model, snapshot))
    return rows


def _open_jobs(session: Session, company_ids: Sequence[int]) -> dict[int, list[JobClose]]:
    jobs: dict[int, list[JobClose]] = {}
    for part in chunked(list(company_ids)):
        for job_id, company_id, status, resolved_at in session.execute(
            select(DeadJob.id, DeadJob.company_id, DeadJob.status, DeadJob.resolved_at)
            .where(DeadJob.company_id.in_(part), DeadJob.status.in_(OPEN_DEAD_JOBS))
            .order_by(DeadJob.id)
        ):
            jobs.setdefault(company_id, []).append(JobClose(job_id, company_id, status, resolved_at))
    return jobs


# --- writing a merge ---------------------------------------------------------------------------------------


def apply_merges(session: Session, plans: Iterable[MergePlan], merge_id: int) -> None:
    """Write the plans' merges and refusals in the caller's transaction (with the merge's outcomes).

    Raises :class:`StaleMergePlanError` when something a plan read changed before this transaction.
    """
    now = utcnow()
    changes: dict[int, dict[str, Any]] = {}
    move_rows: list[tuple[Any, ...]] = []
    for plan in plans:
        if plan.verdict is Verdict.REFUSE:
            _claim_cluster(session, plan, ClusterStatus.REFUSED, plan.reason, None)
            continue
        if plan.verdict is not Verdict.MERGE:
            continue
        _claim_cluster(session, plan, ClusterStatus.MERGED, None, merge_id)
        winner = _recheck_members(session, plan)
        for loser in plan.losers:
            check_merge_target(loser, plan.winner_id, winner[0], winner[1])
            changes[loser] = {"status": CompanyStatus.MERGED, "merged_into_id": plan.winner_id}
        if plan.fills:
            changes[plan.winner_id] = dict(plan.fills)
        move_rows.extend(_move_scores(session, plan, merge_id))
        move_rows.extend(_close_jobs(session, plan, merge_id, now))
    apply_changes(session, changes, merge_id, kind=MERGE_KIND)
    insert_rows(
        session,
        _moves,
        {},
        ("bulk_action_id", "cluster_id", "table_name", "row_id", "kind", "from_company_id", "to_company_id", "before"),
        move_rows,
    )


def _claim_cluster(session: Session, plan: MergePlan, status: str, reason: str | None, merged_by: int | None) -> None:
    """Set the cluster's status if it is still what the plan read (on PostgreSQL this locks the row)."""
    done = session.execute(
        update(_clusters)
        .where(_clusters.c.id == plan.cluster_id, _clusters.c.status == plan.cluster_status)
        .values(status=status, reason=reason, merged_by=merged_by, updated_at=utcnow())
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]
        raise StaleMergePlanError(f"cluster {plan.cluster_id} changed while its merge was planned: run it again")


def _recheck_members(session: Session, plan: MergePlan) -> tuple[CompanyStatus | None, int | None]:
    """Every member is as planned (same ``updated_at``, active); returns the winner's status and merged_into."""
    rows = session.execute(
        select(Company.id, Company.updated_at, Company.status, Company.merged_into_id)
        .where(Company.id.in_(list(plan.read_at)))
        .with_for_update()
    ).all()
    now = {row[0]: row[1:] for row in rows}
    for company_id, read_at in plan.read_at.items():
        current = now.get(company_id)
        if current is None or current[0] != read_at or current[1] is not CompanyStatus.ACTIVE:
            raise StaleMergePlanError(
                f"company {company_id} of cluster {plan.cluster_id} changed while the merge was planned: run it again"
            )
    winner = now[plan.winner_id]
    return winner[1], winner[2]


def _move_scores(session: Session, plan: MergePlan, merge_id: int) -> list[tuple[Any, ...]]:
    by_loser: dict[int, list[ScoreMove]] = {}
    for move in plan.score_moves:
        by_loser.setdefault(move.loser_id, []).append(move)
    for loser, moves in by_loser.items():
        ids = [m.row_id for m in moves]
        done = session.execute(
            update(_scores)
            .where(_scores.c.id.in_(ids), _scores.c.company_id == loser)
            .values(company_id=plan.winner_id)
        )
        if done.rowcount != len(ids):  # type: ignore[attr-defined]
            raise StaleMergePlanError(f"the scores of company {loser} changed while the merge was planned")
    return [
        (merge_id, plan.cluster_id, SCORES_TABLE, m.row_id, MOVED, m.loser_id, plan.winner_id, m.snapshot)
        for m in plan.score_moves
    ]


def _close_jobs(session: Session, plan: MergePlan, merge_id: int, now: datetime) -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = []
    for job in plan.job_closes:
        done = session.execute(
            update(_jobs)
            .where(_jobs.c.id == job.row_id, _jobs.c.status == job.status)
            .values(status=DeadJobStatus.DISCARDED, resolved_at=now)
        )
        if done.rowcount != 1:  # type: ignore[attr-defined]
            raise StaleMergePlanError(f"dead job {job.row_id} changed while the merge was planned")
        before = json.dumps({"status": job.status.value, "resolved_at": encode_value(job.resolved_at)})
        rows.append((merge_id, plan.cluster_id, DEAD_JOBS_TABLE, job.row_id, CLOSED, job.loser_id, None, before))
    return rows


def merged_into_cycles(session: Session) -> list[int]:
    """Companies on a cycle of ``merged_into`` (always empty: the invariant tests check it)."""
    edges = dict(
        session.execute(select(Company.id, Company.merged_into_id).where(Company.merged_into_id.is_not(None)))
        .tuples()
        .all()
    )
    on_cycle: set[int] = set()
    done: set[int] = set()
    for start in edges:
        path: list[int] = []
        node: int | None = start
        while node is not None and node not in done and node not in path:
            path.append(node)
            node = edges.get(node)
        if node is not None and node in path:
            on_cycle.update(path[path.index(node) :])
        done.update(path)
    return sorted(on_cycle)
