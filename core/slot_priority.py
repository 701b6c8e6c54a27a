"""Priorities: which work queue a bulk action's run goes to, and who gets a provider's slots first.

Two places decide what runs first, and both follow the bulk action's ``priority`` (higher first, default 0):

* **Work queues.** The work pool has three queues, ``high``, ``default`` and ``low``, with Prefect queue
  priorities 1, 2, 3 (``deployments/work_queues.py``): when runs back up behind busy workers, a worker takes
  the ``high`` queue's runs first.  ``queue_for`` maps a priority to its queue.
* **Provider slots.** Runs that compete for one provider's concurrency slots (``flows/provider_slots.py``)
  register a ``SlotRequest`` row.  A free slot goes to the highest-ranked live waiter, and a holder gives a slot
  back at its next batch boundary when a live waiter ranks above it.

**No starvation (the aging rule):** a waiter's effective priority is its priority plus one for every
``AGE_STEP_SECONDS`` (60 s) it has waited, so a priority-0 action waiting behind priority-5 work outranks it
after six minutes and gets a slot; once it holds what it wants its age resets.  A holder that is not waiting
ranks at its base priority.  Ties between waiters go to the one waiting longest, then the oldest request.

Only *live* requests count: a request whose heartbeat is older than ``STALE_AFTER_SECONDS`` (twice the slot
leases' renewal period) belongs to a run that died, and never blocks anyone.  Runs of the same bulk action (its
shards) never make each other yield or wait: they share the action's priority and split its slots themselves.

Pure functions on plain values (no Prefect, no database): the store is ``core.slot_requests``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

#: priorities at or above this go to the ``high`` queue
HIGH_PRIORITY_MIN = 5
#: priorities at or above this (and below HIGH_PRIORITY_MIN) go to ``default``; below it, to ``low``
DEFAULT_PRIORITY_MIN = 0
HIGH_QUEUE, DEFAULT_QUEUE, LOW_QUEUE = "high", "default", "low"
#: our work queues, most urgent first, with their Prefect queue priorities (1 is served first)
WORK_QUEUES: dict[str, int] = {HIGH_QUEUE: 1, DEFAULT_QUEUE: 2, LOW_QUEUE: 3}

#: a waiter gains one priority step per this many seconds of waiting (the no-starvation rule)
AGE_STEP_SECONDS = 60.0
#: a request whose heartbeat is older than this belongs to a dead run (2 x the slot leases' 60-s renewal)
STALE_AFTER_SECONDS = 120.0


def queue_for(priority: int) -> str:
    """The work queue a bulk action of ``priority`` runs in."""
    if priority >= HIGH_PRIORITY_MIN:
        return HIGH_QUEUE
    if priority >= DEFAULT_PRIORITY_MIN:
        return DEFAULT_QUEUE
    return LOW_QUEUE


def effective_priority(priority: int, waiting_since: datetime | None, now: datetime) -> int:
    """``priority`` plus one step per ``AGE_STEP_SECONDS`` waited (a run that is not waiting: its priority)."""
    if waiting_since is None:
        return priority
    waited = max((now - waiting_since).total_seconds(), 0.0)
    return priority + int(waited // AGE_STEP_SECONDS)


@dataclass(frozen=True)
class Claim:
    """What the rules need of one ``SlotRequest`` row."""

    flow_run_id: str
    bulk_action_id: int | None
    priority: int
    waiting_since: datetime | None
    heartbeat_at: datetime
    #: the row's id: the last tie-break (the older request first)
    order: int = 0

    def is_live(self, now: datetime) -> bool:
        return (now - self.heartbeat_at).total_seconds() <= STALE_AFTER_SECONDS

    def rank(self, now: datetime) -> tuple[int, float, int]:
        """Sort key, larger first: effective priority, then longer waiting, then the older request."""
        waited = (now - self.waiting_since).total_seconds() if self.waiting_since is not None else 0.0
        return effective_priority(self.priority, self.waiting_since, now), waited, -self.order


def _rivals(me: Claim, waiters: Iterable[Claim], now: datetime) -> list[Claim]:
    """Live waiters of other bulk actions (never ``me``, never my own action's other runs)."""
    return [
        w
        for w in waiters
        if w.waiting_since is not None
        and w.flow_run_id != me.flow_run_id
        and (me.bulk_action_id is None or w.bulk_action_id != me.bulk_action_id)
        and w.is_live(now)
    ]


def may_take_slot(me: Claim, waiters: Iterable[Claim], now: datetime) -> bool:
    """May ``me``, waiting, take a free slot?  Yes unless another live waiter ranks higher."""
    mine = me.rank(now)
    return not any(w.rank(now) > mine for w in _rivals(me, waiters, now))


def must_yield_slot(holder: Claim, waiters: Iterable[Claim], now: datetime) -> bool:
    """Must ``holder`` give one slot back?  Yes when a live waiter's effective priority is above the holder's
    (its base priority when it is not waiting itself, its effective one when it is)."""
    own = effective_priority(holder.priority, holder.waiting_since, now)
    return any(effective_priority(w.priority, w.waiting_since, now) > own for w in _rivals(holder, waiters, now))
