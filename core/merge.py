"""Merging reviewed duplicate clusters: the rule, and the pure decisions that carry it out.

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
(which would draw them again) is refused (:func:`core.merge_undo.rolled_back_merge`).

This module holds the rule's decisions (refusal reasons, loser order, fills, which score sets move, the no-cycle
check) and the data classes they share, with no database access.  ``core.merge_store`` reads the plans and
writes them, ``core.merge_undo`` puts a merge's moves back for rollback, ``core.merge_report`` reports what
became of each cluster.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from core.errors import BulkAIError
from core.history import TRACKED_FIELDS, encode_value
from core.schema import CompanyStatus, DeadJobStatus, OutcomeStatus
from core.store import CompanyResult

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


def score_snapshot(values: Sequence[Any]) -> str:
    """A score row's :data:`SCORE_SNAPSHOT` columns as JSON: kept with a moved row, compared on rollback."""
    return json.dumps(dict(zip(SCORE_SNAPSHOT, (encode_value(v) for v in values), strict=True)), sort_keys=True)


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
