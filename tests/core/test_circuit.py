"""The shared circuit breaker's state machine (``core.circuit``) on a real database, with an injected clock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from core import circuit
from core.circuit import Admission, BreakerRules
from core.db import get_engine, migrate
from core.operations_tables import CircuitState

RULES = BreakerRules(consecutive_failures=3, cooldown_seconds=10.0, probes=2, pause_after_seconds=60.0)
T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path / 'circuit.db'}"
    migrate(url)
    yield get_engine(url)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def fail(engine: Engine, n: int, when: datetime) -> list[circuit.Transition]:
    moved = [circuit.record_failure(engine, "groq", RULES, when, "ProviderServerError: HTTP 503") for _ in range(n)]
    return [m for m in moved if m is not None]


def test_a_run_of_failures_opens_the_breaker_once(engine: Engine) -> None:
    assert fail(engine, 2, at(0)) == []
    assert circuit.read(engine, "groq").state == CircuitState.CLOSED
    opened = fail(engine, 3, at(1))  # the third in a row opens it; later failures change nothing
    assert [(m.from_state, m.to_state) for m in opened] == [(CircuitState.CLOSED, CircuitState.OPEN)]
    state = circuit.read(engine, "groq")
    assert state.state == CircuitState.OPEN and state.opened_at == at(1) and state.opened_count == 1


def test_a_success_resets_the_run(engine: Engine) -> None:
    fail(engine, 2, at(0))
    circuit.record_success(engine, circuit.read(engine, "groq"), at(1))
    assert fail(engine, 2, at(2)) == []
    assert circuit.read(engine, "groq").state == CircuitState.CLOSED


def test_open_admits_nobody_until_the_cooldown_then_only_the_probes(engine: Engine) -> None:
    fail(engine, 3, at(0))
    state = circuit.read(engine, "groq")
    assert circuit.admit(engine, state, RULES, at(9.9))[0] is Admission.WAIT
    first, moved = circuit.admit(engine, state, RULES, at(10))
    assert first is Admission.PROBE and moved is not None and moved.to_state == CircuitState.HALF_OPEN
    # a caller that read the old 'open' row cannot make the move again
    assert circuit.admit(engine, state, RULES, at(10)) == (Admission.WAIT, None)
    half_open = circuit.read(engine, "groq")
    admissions = [circuit.admit(engine, half_open, RULES, at(11))[0] for _ in range(4)]
    assert admissions == [Admission.PROBE, Admission.WAIT, Admission.WAIT, Admission.WAIT]  # 2 probes in all


def test_a_probe_success_closes_and_a_probe_failure_reopens(engine: Engine) -> None:
    fail(engine, 3, at(0))
    circuit.admit(engine, circuit.read(engine, "groq"), RULES, at(10))
    reopened = fail(engine, 1, at(11))
    assert [(m.from_state, m.to_state) for m in reopened] == [(CircuitState.HALF_OPEN, CircuitState.OPEN)]
    state = circuit.read(engine, "groq")
    assert state.opened_at == at(11) and state.outage_started_at == at(0)  # the outage goes on
    assert state.outage_seconds(at(30)) == 30.0
    circuit.admit(engine, state, RULES, at(21))
    closed = circuit.record_success(engine, circuit.read(engine, "groq"), at(22))
    assert closed is not None and closed.to_state == CircuitState.CLOSED
    state = circuit.read(engine, "groq")
    assert state.state == CircuitState.CLOSED and state.outage_started_at is None and state.consecutive_failures == 0
    history = [(t.from_state, t.to_state) for t in circuit.transitions(engine, "groq")]
    assert history == [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
    ]


def test_a_straggler_success_does_not_close_an_open_breaker(engine: Engine) -> None:
    fail(engine, 3, at(0))
    assert circuit.record_success(engine, circuit.read(engine, "groq"), at(1)) is None
    assert circuit.read(engine, "groq").state == CircuitState.OPEN


def test_breakers_are_per_tag(engine: Engine) -> None:
    fail(engine, 3, at(0))
    assert circuit.read(engine, "parallel").state == CircuitState.CLOSED
    assert {c.tag: c.state for c in circuit.read_all(engine)} == {"groq": "open", "parallel": "closed"}
