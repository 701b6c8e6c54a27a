"""Priority rules: work queues, the aging rule on an injected clock, who takes and who yields a slot; the store."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from blocks.database import CompanyDatabase
from core.slot_priority import (
    AGE_STEP_SECONDS,
    STALE_AFTER_SECONDS,
    Claim,
    effective_priority,
    may_take_slot,
    must_yield_slot,
    queue_for,
)
from core.slot_requests import delete_claim, heartbeat, live_waiters, record_claim

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def claim(
    run: str, priority: int, waiting_since: datetime | None, *, action: int | None = None, beat: float = 0
) -> Claim:
    return Claim(run, action, priority, waiting_since, at(beat))


@pytest.mark.parametrize(
    ("priority", "queue"), [(10, "high"), (5, "high"), (4, "default"), (0, "default"), (-1, "low"), (-50, "low")]
)
def test_priorities_map_to_queues(priority: int, queue: str) -> None:
    assert queue_for(priority) == queue


def test_age_raises_a_waiters_priority_one_step_per_interval() -> None:
    assert effective_priority(2, None, at(10_000)) == 2  # not waiting: no age
    assert effective_priority(2, at(0), at(AGE_STEP_SECONDS - 1)) == 2
    assert effective_priority(2, at(0), at(AGE_STEP_SECONDS)) == 3
    assert effective_priority(0, at(0), at(6 * AGE_STEP_SECONDS)) == 6


def test_a_higher_waiter_takes_a_free_slot_first_and_ties_go_to_the_longest_waiting() -> None:
    now = at(10)
    low, high = claim("low", 0, at(0), beat=10), claim("high", 7, at(9), beat=10)
    assert may_take_slot(high, [low, high], now)
    assert not may_take_slot(low, [low, high], now)
    early, late = claim("early", 3, at(1), beat=10), claim("late", 3, at(5), beat=10)
    assert may_take_slot(early, [early, late], now) and not may_take_slot(late, [early, late], now)


def test_a_holder_yields_to_a_higher_live_waiter_of_another_action_only() -> None:
    now = at(10)
    holder = claim("low-holder", 0, None, beat=10)
    assert must_yield_slot(holder, [claim("high", 5, at(9), beat=10)], now)
    assert not must_yield_slot(holder, [claim("same", 0, at(9), beat=10)], now)  # an equal rank never preempts
    sibling = claim("shard-1", 5, at(9), action=42, beat=10)  # a shard of the holder's own action
    assert not must_yield_slot(claim("shard-0", 0, None, action=42, beat=10), [sibling], now)
    assert not must_yield_slot(holder, [], now)


def test_a_dead_runs_request_never_blocks_anyone() -> None:
    now = at(1_000)
    dead = claim("dead", 9, at(0), beat=1_000 - STALE_AFTER_SECONDS - 1)
    me = claim("me", 0, at(999), beat=1_000)
    assert may_take_slot(me, [dead, me], now)
    assert not must_yield_slot(claim("holder", 0, None, beat=1_000), [dead], now)


def test_a_low_waiter_outranks_high_holders_after_waiting_long_enough() -> None:
    """The no-starvation rule on an injected clock: priority 0 behind a priority-5 holder gets in after 6 steps."""
    holder = claim("high-holder", 5, None)
    for minutes in range(8):
        now = at(minutes * AGE_STEP_SECONDS)
        waiter = claim("low", 0, at(0), beat=minutes * AGE_STEP_SECONDS)
        assert must_yield_slot(holder, [waiter], now) is (minutes >= 6), minutes
    # and a newer high waiter ranks below a low one that has waited long enough
    now = at(10 * AGE_STEP_SECONDS)
    old_low = claim("old-low", 0, at(0), beat=600)
    new_high = claim("new-high", 5, at(599), beat=600)
    assert may_take_slot(old_low, [old_low, new_high], now) and not may_take_slot(new_high, [old_low, new_high], now)


def test_the_store_keeps_waiting_since_while_waiting_and_clears_it_when_satisfied(db: CompanyDatabase) -> None:
    tag = f"prio-{uuid.uuid4().hex[:8]}"
    run, other = str(uuid.uuid4()), str(uuid.uuid4())
    now = datetime.now(UTC)
    with db.session() as session:
        first = record_claim(session, tag, run, bulk_action_id=None, priority=3, wanted=2, held=0, now=now)
        assert first.waiting_since == now
        later = record_claim(
            session, tag, run, bulk_action_id=None, priority=3, wanted=2, held=1, now=now + timedelta(seconds=5)
        )
        assert later.waiting_since == now  # still waiting: its age counts from the first wait
        record_claim(session, tag, other, bulk_action_id=None, priority=1, wanted=1, held=1, now=now)
    with db.read_session() as session:
        assert [w.flow_run_id for w in live_waiters(session, tag, now + timedelta(seconds=5))] == [run]
        assert live_waiters(session, tag, now + timedelta(seconds=5 + STALE_AFTER_SECONDS + 1)) == []
    with db.session() as session:
        heartbeat(session, tag, run, now + timedelta(seconds=300))
    with db.read_session() as session:
        assert len(live_waiters(session, tag, now + timedelta(seconds=300))) == 1
    with db.session() as session:
        done = record_claim(session, tag, run, bulk_action_id=None, priority=3, wanted=2, held=2, now=now)
        assert done.waiting_since is None
    with db.read_session() as session:
        assert live_waiters(session, tag, now) == []
    with db.session() as session:
        delete_claim(session, tag, run)
        delete_claim(session, tag, other)
