"""Merging reviewed duplicate clusters: plan a cluster's merge, check it, apply it, and put back what it moved.

A cluster (``core.dedup_tables``, found by a ``dedup_sweep``) has one winner and one or more losers.  Merging it,
in the transaction of the merge's outcome for it:

**Refused** (the cluster becomes ``refused``; the reason is in its row and in the merge's outcome, ``skipped``)
when a member changed since the sweep read it (``companies.updated_at`` later than the member's
``seen_updated_at``), a member is no longer ``active`` (merged or deleted since) or gone, or the winner is not
active.  **A no-op** (outcome ``skipped``) when the cluster is merged already.  Otherwise:

- the winner keeps its id and its name; each of its *empty* fields is filled from the losers, the most complete
  loser first (most non-empty fill fields, then the lowest id).  The fill fields are the user-facing columns the
  history tracks, in groups that belong together: ``website`` with its ``domain``; ``industry``; ``nace_code``;
  ``country``; ``activity_description``; ``ownership_type``; and the classification (``taxonomy_version``,
  ``sector``, ``subsector``, ``business_model`` and how it was made), taken from a classified loser only when the
  winner was never classified.  A group is taken from the first loser whose group key (its first field) is set,
  and only into the winner's empty fields: a non-empty field of the winner is never overwritten.
  ``enrichment_status`` and ``enriched_at`` stay the winner's: the enrichment files stay with the loser;
- each loser becomes ``merged`` with ``merged_into_id`` = the winner.  Fills and losers' changes are
  ``company_history`` rows of kind ``merge`` under the merge's bulk action;
- the losers' related rows follow one rule:

  * ``company_scores``: the rows of a (provider, model) the winner has no score of are moved to the winner
    (``company_id`` re-pointed), all rows of that (provider, model) together and from the first loser (in the
    order above) that has them, so a score set never mixes two companies' criteria with one total.  Rows of a
    (provider, model) the winner has already stay with the loser.  Each moved row is a ``merge_moves`` row of
    kind ``moved`` with a snapshot of the row, so rollback can tell a row rescored since;
  * ``dead_jobs`` still waiting on someone (``open`` or ``needs_review``) are closed (``discarded``, with
    ``resolved_at``): a ``merge_moves`` row of kind ``closed`` keeps the status and ``resolved_at`` before;
  * embeddings, enrichment files, bulk-action outcome rows, spend and history stay with the loser: they describe
    the loser's own text and past.  A merged company is out of every selection unless its status is asked for,
    and out of semantic search;
- the cluster becomes ``merged`` with ``merged_by`` = the merge.

``merged_into_id`` can never form a cycle: a company is only ever merged into an *active* company other than
itself (:func:`check_merge_target`, asserted again when the merge is written), and an active company points
nowhere, so the new edge cannot close a loop.  Rollback only clears edges, and a rollback of a merge's rollback
(which would draw them again) is refused (:func:`rolled_back_merge`).

Plans are made in a read transaction and written later, with the batch's outcomes; the write checks that what
it read is still so (the cluster's status, every member's ``updated_at``, each moved row) and raises
:class:`StaleMergePlanError` if not, so two merges racing over one cluster never both apply it.

Rollback (``core.rollback``, ``tasks.rollback``) restores the fields from the history and undoes the moves here
(:func:`plan_merge_undo`, :func:`apply_merge_undo`).
"""

from __future__ import annotations

import enum
import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, select, update
from sqlalchemy.orm import Session

from core.dedup_tables import ClusterStatus, DedupCluster, DedupClusterMember, MergeMove
from core.errors import BulkAIError, InputError
from core.history import TRACKED_FIELDS, apply_changes, encode_value
from core.schema import (
    BulkAction,
    BulkActionOutcome,
    Company,
    CompanyScore,
    CompanyStatus,
    DeadJob,
    DeadJobStatus,
    OutcomeStatus,
    utcnow,
)
from core.store import CompanyResult, chunked, insert_rows

MERGE_ACTION = "merge_companies"
SWEEP_ACTION = "dedup_sweep"
#: the history kind of a merge's changes (``core.schema.CompanyHistory.kind``)
MERGE_KIND = "merge"

CLASSIFICATION_GROUP: tuple[str, ...] = (
    "taxonomy_version",
    "sector",
    "subsector",
    "business_model",
    "classification_mode",
    "classification_model",
    "classification_input_sha256",
)
#: the winner's fields a merge fills, in groups taken together from one loser (the first field is the key)
FILL_GROUPS: tuple[tuple[str, ...], ...] = (
    ("website", "domain"),
    ("industry",),
    ("nace_code",),
    ("country",),
    ("activity_description",),
    ("ownership_type",),
    CLASSIFICATION_GROUP,
)
FILL_FIELDS: tuple[str, ...] = tuple(f for group in FILL_GROUPS for f in group)
assert set(FILL_FIELDS) <= TRACKED_FIELDS, "a merge fills only fields the history tracks"

#: dead jobs a merge closes on a loser: those still waiting on someone
OPEN_DEAD_JOBS = (DeadJobStatus.OPEN, DeadJobStatus.NEEDS_REVIEW)
#: the columns of a moved score row whose change since the merge means a rescore overwrote it
SCORE_SNAPSHOT = ("criterion", "provider", "model", "bulk_action_id", "level", "score", "input_sha256", "scored_at")

SCORES_TABLE = "company_scores"
DEAD_JOBS_TABLE = "dead_jobs"
MOVED = "moved"
CLOSED = "closed"

#: how a merge's outcome detail starts, per verdict (the summary counts them)
REFUSED_PREFIX = "refused: "
ALREADY_PREFIX = "already merged"
EXCLUDED_PREFIX = "excluded"


class MergeCycleError(BulkAIError, AssertionError):
    """A merge would point a company at itself or at a company that is not active: ``merged_into`` could loop."""


class StaleMergePlanError(BulkAIError):
    """What a merge (or its rollback) planned changed before it was written; running it again plans afresh."""

    retryable = True


class Verdict(enum.StrEnum):
    MERGE = "merge"
    REFUSE = "refuse"
    ALREADY_MERGED = "already_merged"
    EXCLUDED = "excluded"
    NOT_FOUND = "not_found"


@dataclass(frozen=True)
class Member:
    """A cluster member as the sweep saw it and as it is now (``exists`` False: the row is gone)."""

    company_id: int
    is_winner: bool
    seen_updated_at: datetime
    exists: bool = False
    status: CompanyStatus | None = None
    merged_into_id: int | None = None
    updated_at: datetime | None = None
    values: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ScoreMove:
    row_id: int
    loser_id: int
    snapshot: str


@dataclass(frozen=True)
class JobClose:
    row_id: int
    loser_id: int
    status: DeadJobStatus
    resolved_at: datetime | None


@dataclass(frozen=True)
class MergePlan:
    """What merging one cluster does (or why it does not), for the winner ``winner_id``."""

    winner_id: int
    verdict: Verdict
    reason: str = ""
    cluster_id: int | None = None
    #: the cluster's status when planned (the write updates it only if it is still this)
    cluster_status: str | None = None
    losers: tuple[int, ...] = ()
    fills: Mapping[str, Any] = field(default_factory=dict)
    filled_from: Mapping[str, int] = field(default_factory=dict)
    score_moves: tuple[ScoreMove, ...] = ()
    job_closes: tuple[JobClose, ...] = ()
    #: every member's ``updated_at`` when planned (the write refuses to apply if one moved)
    read_at: Mapping[int, datetime | None] = field(default_factory=dict)
    merged_by: int | None = None

    @property
    def writes(self) -> bool:
        return self.verdict in (Verdict.MERGE, Verdict.REFUSE)

    def result(self) -> CompanyResult:
        """The merge's outcome for the winner's row."""
        if self.verdict is Verdict.MERGE:
            return CompanyResult(self.winner_id, OutcomeStatus.SUCCEEDED, self.describe(), 0)
        if self.verdict is Verdict.NOT_FOUND:
            return CompanyResult(self.winner_id, OutcomeStatus.FAILED, self.reason, 1, "ClusterNotFound")
        return CompanyResult(self.winner_id, OutcomeStatus.SKIPPED, self.describe(), 0)

    def describe(self) -> str:
        where = f"cluster {self.cluster_id}"
        if self.verdict is Verdict.REFUSE:
            return f"{REFUSED_PREFIX}{where}: {self.reason}"
        if self.verdict is Verdict.ALREADY_MERGED:
            return f"{ALREADY_PREFIX}: {where} by bulk action {self.merged_by}"
        if self.verdict is Verdict.EXCLUDED:
            return f"{EXCLUDED_PREFIX}: {where}: {self.reason}"
        if self.verdict is Verdict.NOT_FOUND:
            return self.reason
        parts = [f"merged {where}: {', '.join(map(str, self.losers))} into {self.winner_id}"]
        by_source: dict[int, list[str]] = {}
        for name, source in self.filled_from.items():
            by_source.setdefault(source, []).append(name)
        parts.extend(f"filled {', '.join(names)} from {source}" for source, names in sorted(by_source.items()))
        if self.score_moves:
            parts.append(f"moved {len(self.score_moves)} score rows")
        if self.job_closes:
            parts.append(f"closed {len(self.job_closes)} dead jobs")
        return "; ".join(parts)


# --- the pure decisions --------------------------------------------------------------------------------------


def is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def completeness(values: Mapping[str, Any]) -> int:
    return sum(not is_empty(values.get(f)) for f in FILL_FIELDS)


def order_losers(losers: Iterable[Member]) -> list[Member]:
    """The most complete loser first (most non-empty fill fields), then the lowest id."""
    return sorted(losers, key=lambda m: (-completeness(m.values), m.company_id))


def refusal(members: Sequence[Member], winner_id: int) -> str | None:
    """Why the cluster must not be merged now, or None: see the module docstring."""
    ids = {m.company_id for m in members}
    if winner_id not in ids:
        return f"the winner {winner_id} is not a member"
    if len(members) < 2:
        return "fewer than two members"
    problems: list[str] = []
    for m in sorted(members, key=lambda m: (not m.is_winner, m.company_id)):
        who = f"winner {m.company_id}" if m.company_id == winner_id else f"member {m.company_id}"
        if not m.exists:
            problems.append(f"{who} no longer exists")
        elif m.status is CompanyStatus.MERGED:
            problems.append(f"{who} is merged into {m.merged_into_id}")
        elif m.status is not CompanyStatus.ACTIVE:
            problems.append(f"{who} is {m.status}")
        elif m.updated_at is not None and m.updated_at > m.seen_updated_at:
            problems.append(f"{who} changed since the sweep (updated {m.updated_at.isoformat(timespec='seconds')})")
    return "; ".join(problems) or None


def check_merge_target(
    loser_id: int, winner_id: int, winner_status: CompanyStatus | None, winner_merged_into: int | None
) -> None:
    """The invariant that keeps ``merged_into`` free of cycles: only into an active company other than itself."""
    if loser_id == winner_id:
        raise MergeCycleError(f"company {loser_id} cannot be merged into itself")
    if winner_status is not CompanyStatus.ACTIVE or winner_merged_into is not None:
        what = f"merged into {winner_merged_into}" if winner_merged_into is not None else str(winner_status)
        raise MergeCycleError(f"company {loser_id} cannot be merged into {winner_id}: it is {what}")


def fills_for(winner: Mapping[str, Any], losers: Sequence[Member]) -> tuple[dict[str, Any], dict[str, int]]:
    """The winner's empty fields filled from ``losers`` (already in order): values, and which loser gave each."""
    fills: dict[str, Any] = {}
    sources: dict[str, int] = {}
    for group in FILL_GROUPS:
        key = group[0]
        if not is_empty(winner.get(key)):
            continue
        source = next((m for m in losers if not is_empty(m.values.get(key))), None)
        if source is None:
            continue
        for name in group:
            if is_empty(winner.get(name)) and not is_empty(source.values.get(name)):
                fills[name] = source.values[name]
                sources[name] = source.company_id
    return fills, sources


def score_moves_for(
    winner_sets: Collection[tuple[str, str]],
    losers: Sequence[Member],
    rows: Mapping[int, Sequence[tuple[int, str, str, str]]],
) -> list[ScoreMove]:
    """The loser score rows to move: whole (provider, model) sets the winner lacks, first loser first.

    ``rows``: per loser, (row id, provider, model, snapshot).
    """
    taken = set(winner_sets)
    moves: list[ScoreMove] = []
    for loser in losers:
        sets: dict[tuple[str, str], list[ScoreMove]] = {}
        for row_id, provider, model, snapshot in rows.get(loser.company_id, ()):
            sets.setdefault((provider, model), []).append(ScoreMove(row_id, loser.company_id, snapshot))
        for key, set_moves in sets.items():
            if key not in taken:
                taken.add(key)
                moves.extend(set_moves)
    return moves


# --- reading: the clusters of a sweep, and the plans -----------------------------------------------------------

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
    """Per winner, the plan for its cluster of the sweep (see the module docstring); reads only.

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
            snapshot = _snapshot(row[2:])
            rows.setdefault(row.company_id, []).append((row.id, row.provider, row.model, snapshot))
    return rows


def _snapshot(values: Sequence[Any]) -> str:
    return json.dumps(dict(zip(SCORE_SNAPSHOT, (encode_value(v) for v in values), strict=True)), sort_keys=True)


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


# --- the merge's report ------------------------------------------------------------------------------------


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


# --- undoing a merge (rollback) ------------------------------------------------------------------------------


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
            found[row[0]] = (row[1], _snapshot(row[2:]))
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
