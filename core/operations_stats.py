"""The figures of the operations report, read from the company database (``flows.operations_report``).

Prefect-free, like ``core.maintenance``: each function takes a ``Session`` and the instant ``now`` it reports
on, and returns plain dataclasses, so the report (and its tests) see one exact moment.  The dead jobs and the
review queue come from ``core.maintenance``, the same queries the dead-job review shows, so the two reports
never disagree.

Definitions (the report's footnotes repeat them):

- **Finished outcome**: an outcome row whose status is not ``pending``; it finished at its ``updated_at`` (the
  engine writes the row once, when the company's result is recorded).
- **Throughput**: finished outcomes per action whose ``updated_at`` lies in ``[now - 1 h, now)``; the day's
  chart counts all actions' finished outcomes in 24 hourly windows ending at ``now`` (the last window is the
  last hour).
- **Error rate** of an unfinished action (pending, running, paused or waiting): ``failed ÷ processed``, where
  processed counts its succeeded, failed and skipped outcomes and failed its failed ones; *last hour* counts
  only outcomes that finished in ``[now - 1 h, now)``, *overall* all of them.  ``None`` when nothing was
  processed (no rate, rather than a misleading 0).
- **Spend today / this month**: the ledger's ``cost_nanousd`` with ``created_at`` in ``[midnight UTC, now]`` and
  ``[the first of the month 00:00 UTC, now]``.
- **Waiting companies**: pending outcome rows of unfinished actions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.orm import Session

from core.catalog import ACTIONS
from core.maintenance import UNFINISHED, DeadJobGroup, ReviewGroup, group_dead_jobs, group_review_queue
from core.operations_tables import ProviderCircuit, SlotRequest
from core.schema import BulkAction, BulkActionOutcome, BulkActionStatus, OutcomeStatus, SpendEntry

HOUR = timedelta(hours=1)
CHART_HOURS = 24
#: statuses of an action that may still process companies


@dataclass(frozen=True)
class StatusCount:
    action: str
    status: str
    count: int


@dataclass(frozen=True)
class WaitingCompanies:
    bulk_action_id: int
    action: str
    provider: str
    status: str
    pending: int


@dataclass(frozen=True)
class ActionThroughput:
    bulk_action_id: int
    action: str
    finished_last_hour: int


@dataclass(frozen=True)
class HourBucket:
    start: datetime
    end: datetime
    finished: int


@dataclass(frozen=True)
class ErrorRate:
    bulk_action_id: int
    action: str
    status: str
    failed_last_hour: int
    processed_last_hour: int
    failed: int
    processed: int

    @property
    def rate_last_hour(self) -> float | None:
        return self.failed_last_hour / self.processed_last_hour if self.processed_last_hour else None

    @property
    def rate(self) -> float | None:
        return self.failed / self.processed if self.processed else None


@dataclass(frozen=True)
class SpendLine:
    """One provider's or creator's spend: today and this month (UTC), in nano-dollars, with the calls behind it."""

    name: str
    today_nanousd: int
    today_calls: int
    month_nanousd: int
    month_calls: int


@dataclass(frozen=True)
class CircuitLine:
    tag: str
    state: str
    consecutive_failures: int
    opened_count: int
    opened_at: datetime | None
    outage_started_at: datetime | None
    changed_at: datetime


@dataclass(frozen=True)
class SlotQueue:
    """One provider tag's slot requests: how many flow runs wait, for how many slots, since when."""

    tag: str
    requests: int
    waiting: int
    held: int
    slots_wanted_waiting: int
    oldest_waiting_since: datetime | None
    top_waiting_priority: int | None


@dataclass(frozen=True)
class OperationsStats:
    now: datetime
    by_type_and_status: list[StatusCount]
    waiting: list[WaitingCompanies]
    throughput: list[ActionThroughput]
    hourly: list[HourBucket]
    error_rates: list[ErrorRate]
    dead_jobs: list[DeadJobGroup]
    review_queue: list[ReviewGroup]
    spend_by_provider: list[SpendLine]
    spend_by_creator: list[SpendLine]
    circuits: list[CircuitLine]
    slot_queues: list[SlotQueue]


def provider_of(action: str, parameters: dict[str, object] | None) -> str:
    """The provider block an action runs with: ``parameters['provider']`` as ``open_action`` stores it, or the
    catalog's default for the action when it was started without one."""
    provider = (parameters or {}).get("provider")
    if provider:
        return str(provider)
    spec = ACTIONS.get(action)
    return spec.default_provider if spec is not None else "(none)"


def actions_by_type_and_status(session: Session) -> list[StatusCount]:
    rows = session.execute(
        select(BulkAction.action, BulkAction.status, func.count())
        .group_by(BulkAction.action, BulkAction.status)
        .order_by(BulkAction.action, BulkAction.status)
    )
    return [StatusCount(action, BulkActionStatus(status).value, int(n)) for action, status, n in rows]


def waiting_companies(session: Session) -> list[WaitingCompanies]:
    """Pending outcome rows per unfinished action, with its provider; most waiting first."""
    pending = (
        select(BulkActionOutcome.bulk_action_id, func.count().label("n"))
        .where(BulkActionOutcome.status == OutcomeStatus.PENDING)
        .group_by(BulkActionOutcome.bulk_action_id)
        .subquery()
    )
    # counted in a subquery: PostgreSQL cannot GROUP BY a json column (``parameters``)
    rows = session.execute(
        select(BulkAction.id, BulkAction.action, BulkAction.status, BulkAction.parameters, pending.c.n)
        .join(pending, pending.c.bulk_action_id == BulkAction.id)
        .where(BulkAction.status.in_(UNFINISHED))
    )
    found = [
        WaitingCompanies(i, action, provider_of(action, params), BulkActionStatus(status).value, int(n))
        for i, action, status, params, n in rows
    ]
    return sorted(found, key=lambda w: (-w.pending, w.bulk_action_id))


def _finished_in(start: datetime, end: datetime) -> ColumnElement[bool]:
    return (
        (BulkActionOutcome.status != OutcomeStatus.PENDING)
        & (BulkActionOutcome.updated_at >= start)
        & (BulkActionOutcome.updated_at < end)
    )


def throughput_last_hour(session: Session, now: datetime) -> list[ActionThroughput]:
    """Outcomes finished per action in ``[now - 1 h, now)``; actions with none are left out."""
    rows = session.execute(
        select(BulkAction.id, BulkAction.action, func.count())
        .join(BulkActionOutcome, BulkActionOutcome.bulk_action_id == BulkAction.id)
        .where(_finished_in(now - HOUR, now))
        .group_by(BulkAction.id, BulkAction.action)
    )
    found = [ActionThroughput(i, action, int(n)) for i, action, n in rows]
    return sorted(found, key=lambda t: (-t.finished_last_hour, t.bulk_action_id))


def hourly_throughput(session: Session, now: datetime, hours: int = CHART_HOURS) -> list[HourBucket]:
    """Finished outcomes of all actions in ``hours`` one-hour windows ending at ``now``, oldest first.

    One scan with a CASE per window, so it is the same SQL on SQLite and PostgreSQL.
    """
    edges = [now - HOUR * (hours - i) for i in range(hours + 1)]
    sums = [func.coalesce(func.sum(case((_finished_in(edges[i], edges[i + 1]), 1), else_=0)), 0) for i in range(hours)]
    row = session.execute(select(*sums).where(_finished_in(edges[0], edges[-1]))).one()
    return [HourBucket(edges[i], edges[i + 1], int(row[i])) for i in range(hours)]


def error_rates(session: Session, now: datetime) -> list[ErrorRate]:
    """The error rate of every unfinished action that has processed anything (module docstring)."""
    processed = BulkActionOutcome.status != OutcomeStatus.PENDING
    failed = BulkActionOutcome.status == OutcomeStatus.FAILED
    recent = _finished_in(now - HOUR, now)

    def count(condition: ColumnElement[bool]) -> ColumnElement[int]:
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    rows = session.execute(
        select(
            BulkAction.id,
            BulkAction.action,
            BulkAction.status,
            count(failed & recent),
            count(recent),
            count(failed),
            count(processed),
        )
        .join(BulkActionOutcome, BulkActionOutcome.bulk_action_id == BulkAction.id)
        .where(BulkAction.status.in_(UNFINISHED))
        .group_by(BulkAction.id, BulkAction.action, BulkAction.status)
        .order_by(BulkAction.id)
    )
    return [
        ErrorRate(i, action, BulkActionStatus(status).value, int(fh), int(ph), int(f), int(p))
        for i, action, status, fh, ph, f, p in rows
        if int(p) > 0
    ]


def day_start(now: datetime) -> datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def month_start(now: datetime) -> datetime:
    return day_start(now).replace(day=1)


def spend(session: Session, now: datetime, column: str) -> list[SpendLine]:
    """Spend this month and today by ``column`` (``provider`` or ``created_by``), largest this month first."""
    key = getattr(SpendEntry, column)
    today = SpendEntry.created_at >= day_start(now)
    rows = session.execute(
        select(
            key,
            func.coalesce(func.sum(case((today, SpendEntry.cost_nanousd), else_=0)), 0),
            func.coalesce(func.sum(case((today, SpendEntry.calls), else_=0)), 0),
            func.coalesce(func.sum(SpendEntry.cost_nanousd), 0),
            func.coalesce(func.sum(SpendEntry.calls), 0),
        )
        .where(SpendEntry.created_at >= month_start(now), SpendEntry.created_at <= now)
        .group_by(key)
    )
    found = [SpendLine(str(name), int(td), int(tc), int(md), int(mc)) for name, td, tc, md, mc in rows]
    return sorted(found, key=lambda s: (-s.month_nanousd, s.name))


def circuits(session: Session) -> list[CircuitLine]:
    return [
        CircuitLine(
            c.tag, c.state, c.consecutive_failures, c.opened_count, c.opened_at, c.outage_started_at, c.changed_at
        )
        for c in session.scalars(select(ProviderCircuit).order_by(ProviderCircuit.tag))
    ]


def slot_queues(session: Session) -> list[SlotQueue]:
    """Slot requests per provider tag; a request waits while its ``waiting_since`` is set."""
    queues: list[SlotQueue] = []
    tags = session.scalars(select(SlotRequest.tag).distinct().order_by(SlotRequest.tag))
    for tag in list(tags):
        requests = list(session.scalars(select(SlotRequest).where(SlotRequest.tag == tag)))
        waiting = [r for r in requests if r.waiting_since is not None]
        queues.append(
            SlotQueue(
                tag=tag,
                requests=len(requests),
                waiting=len(waiting),
                held=sum(r.held for r in requests),
                slots_wanted_waiting=sum(max(r.wanted - r.held, 0) for r in waiting),
                oldest_waiting_since=min((r.waiting_since for r in waiting if r.waiting_since), default=None),
                top_waiting_priority=max((r.priority for r in waiting), default=None),
            )
        )
    return queues


def operations_stats(session: Session, now: datetime) -> OperationsStats:
    """Every figure of the report, read in one session."""
    return OperationsStats(
        now=now,
        by_type_and_status=actions_by_type_and_status(session),
        waiting=waiting_companies(session),
        throughput=throughput_last_hour(session, now),
        hourly=hourly_throughput(session, now),
        error_rates=error_rates(session, now),
        dead_jobs=group_dead_jobs(session),
        review_queue=group_review_queue(session),
        spend_by_provider=spend(session, now, "provider"),
        spend_by_creator=spend(session, now, "created_by"),
        circuits=circuits(session),
        slot_queues=slot_queues(session),
    )
