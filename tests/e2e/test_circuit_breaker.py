"""The provider circuit breaker on the deployed system: a 30 s outage in the middle of a sharded action.

Issue #16's breaker test, end to end (``tests/e2e/deployed.py``): a sharded ``generate_embeddings`` (2 shards, one
on each worker, each in a flow-run process of its own) over the sandbox's embeddings provider, an operator's
``OperationsPolicy`` with a short cool-down for that provider's tag, and the sandbox answering 503 to everything
for 30 s once the action is under way.  What only a deployed system shows: the breaker lives in the company
database, so the two shard processes share it: one of them opens it, neither sends anything while it is open
except the one half-open probe per spell, and both resume once a probe succeeds.  Counted where it lands: the
transitions in the company database, the requests (and their arrival times) at the sandbox, the action's
outcomes and dead jobs.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from core import circuit
from core.operations_tables import CircuitState, CircuitTransition
from core.schema import BulkActionStatus, OutcomeStatus
from tests.e2e.deployed import (
    FLOW_RUN_TIMEOUT,
    SHARD_TAG,
    WORKERS,
    Deployed,
    action_created_by,
    get_bulk_action,
    operations_policy,
    outcomes,
    seed_own_companies,
    shard_companies,
    shard_rows,
    start_sharded_embeddings,
    stop,
    wait_for,
    wait_for_exit,
)
from tests.helpers import dead_jobs

pytestmark = pytest.mark.timeout(480)

PROVIDER = "openai"  # the sandbox provider behind SHARD_PROVIDER
N = 480  # 48 calls of 10 texts, 2 in flight at ~0.8 s each: ~20 s of work without the outage
LATENCY_MS = 800
COOLDOWN = 5.0
OUTAGE_SECONDS = 30.0
ADMITTED_GRACE = 0.1  # a call admitted just before the breaker opened may still arrive this long after


@pytest.fixture
def breaker_policy(system: Deployed) -> Iterator[None]:
    """The operator's short cool-down for the shards' provider tag; the policy, the sandbox and the breaker are
    restored afterwards whatever happened (the breaker closed, so no other e2e test meets it open)."""
    settings = {"consecutive_failures": 3, "cooldown_seconds": COOLDOWN, "probes": 1, "pause_after_seconds": 300}

    def change(data: dict[str, Any]) -> dict[str, Any]:
        return {**data, "breaker_by_tag": {**data.get("breaker_by_tag", {}), SHARD_TAG: settings}}

    latency = system.sandbox.get_config()[PROVIDER]["latency_ms"]
    with operations_policy(system, change):
        try:
            yield
        finally:
            system.sandbox.reset()  # an outage still running ends now
            system.sandbox.configure(PROVIDER, latency_ms=latency, faults=[])
            circuit.reset(system.db.get_engine(), SHARD_TAG, datetime.now(UTC))


def embedding_requests(system: Deployed, since: float) -> list[dict[str, Any]]:
    return [
        r for r in system.sandbox.requests(provider=PROVIDER) if r["endpoint"] == "embeddings" and r["time"] >= since
    ]


def spells(history: list[CircuitTransition]) -> list[tuple[str, float, float | None]]:
    """(state, from, to) in epoch seconds for every open and half-open spell of the breaker, in order."""
    found = []
    for current, following in zip(history, [*history[1:], None], strict=True):
        if current.to_state in (CircuitState.OPEN, CircuitState.HALF_OPEN):
            end = following.at.timestamp() if following is not None else None
            found.append((current.to_state, current.at.timestamp(), end))
    return found


def test_an_outage_mid_action_on_two_workers_opens_the_breaker_and_costs_no_company(
    system: Deployed, breaker_policy: None
) -> None:
    system.ensure_workers()
    db = system.db
    engine = db.get_engine()
    circuit.reset(engine, SHARD_TAG, datetime.now(UTC))
    ids = seed_own_companies(system, N, 16016)
    system.sandbox.configure(PROVIDER, latency_ms=LATENCY_MS, faults=[])
    since = time.time()
    since_db = datetime.now(UTC)
    name = "breaker-parent"
    start_sharded_embeddings(system, name, ids)
    try:
        record = wait_for(lambda: action_created_by(db, name), 60, "the bulk action record")

        def both_shards_served() -> bool:
            if system.processes.running[name].poll() is not None:
                raise AssertionError(f"the parent exited early:\n{system.processes.tail(name, 60)}")
            served = [r for r in embedding_requests(system, since) if r["fault"] is None]
            done = outcomes(db, record.id)
            return len(served) >= 6 and all(
                any(done.get(cid, (OutcomeStatus.PENDING, None))[0] is OutcomeStatus.SUCCEEDED for cid in part)
                for part in shard_companies(ids)
            )

        wait_for(both_shards_served, FLOW_RUN_TIMEOUT, "both shards' first answered calls", interval=0.1)
        outage = system.sandbox.outage(PROVIDER, OUTAGE_SECONDS)
        done_at_outage = sum(s is not OutcomeStatus.PENDING for s, _ in outcomes(db, record.id).values())
        code = wait_for_exit(system, name, timeout=FLOW_RUN_TIMEOUT + OUTAGE_SECONDS)
        assert code == 0, system.processes.tail(name, 60)
    finally:
        stop(system, name)

    # the action completed after the outage, no company failed and none became a dead job
    final = get_bulk_action(db, record.id)
    assert final.status is BulkActionStatus.COMPLETED, final.status_reason
    assert (final.total, final.succeeded, final.skipped, final.failed) == (N, N, 0, 0)
    assert done_at_outage < N, "the outage came after the action had finished"
    assert dead_jobs(db, record.id) == []
    assert {status for status, _ in outcomes(db, record.id).values()} == {OutcomeStatus.SUCCEEDED}
    rows = shard_rows(db, record.id)
    assert [(r.status, r.failed) for r in rows] == [(BulkActionStatus.COMPLETED, 0)] * 2
    assert {system.worker_of(str(r.flow_run_id)) for r in rows} == set(WORKERS), "each worker should run a shard"

    # the breaker opened during the outage and a probe closed it; it is closed now
    history = circuit.transitions(engine, SHARD_TAG, since=since_db)
    moves = [(t.from_state, t.to_state) for t in history]
    assert moves, "the breaker never opened"
    assert moves[0] == (CircuitState.CLOSED, CircuitState.OPEN), moves
    assert moves[-1] == (CircuitState.HALF_OPEN, CircuitState.CLOSED), moves
    assert all(t.reason != "reset by hand" for t in history), moves
    assert circuit.read(engine, SHARD_TAG).state == CircuitState.CLOSED

    # the provider saw the outage's 503s only inside the window; while open, nothing but one probe per half-open
    requests = embedding_requests(system, since)
    failed = [r for r in requests if r["fault"] == "outage"]
    assert failed and all(outage["start"] <= r["time"] < outage["end"] for r in failed)
    measured = []
    for state, begin, end in spells(history):
        assert end is not None, f"the breaker was left {state}"
        if state == CircuitState.OPEN:
            inside = [r for r in requests if begin + ADMITTED_GRACE < r["time"] < end]
            measured.append((state, round(end - begin, 2), len(inside)))
            assert end - begin >= COOLDOWN - 0.05, f"a probe went out before the cool-down was over: {measured}"
        else:  # the probe goes out right after the move to half-open
            inside = [r for r in requests if begin <= r["time"] < end]
            measured.append((state, round(end - begin, 2), len(inside)))
    in_open = sum(calls for state, _, calls in measured if state == CircuitState.OPEN)
    probes = [calls for state, _, calls in measured if state == CircuitState.HALF_OPEN]
    closed_after = history[-1].at.timestamp() - outage["end"]
    print(
        f"\nbreaker spells (state, seconds, calls): {measured}\ncalls in open spells {in_open}, probes {sum(probes)} "
        f"in {len(probes)} half-open spells; 503s {len(failed)}; closed {closed_after:.2f} s after the outage ended"
    )
    assert in_open == 0, f"{in_open} calls reached the provider while its breaker was open: {measured}"
    assert probes and set(probes) == {1}, f"each half-open spell should send its one probe, no more: {measured}"
    # A caller whose probe failed leaves the next probe to another caller and probes again itself only after two
    # cool-downs (tasks.circuit_guard); with the shards' 2 slots both waiting calls have soon failed a probe each,
    # so the provider's return is seen at worst two cool-downs (plus a poll and the probe's own latency) later.
    assert closed_after <= 2 * COOLDOWN + 2.0, measured
