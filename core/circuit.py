"""A circuit breaker per provider concurrency tag, its state shared by every worker through the company database.

The state machine is the classic one::

    closed ──(N failures in a row, or an error rate over a window)──▶ open
    open ──(cool-down passed: the first caller to notice)──▶ half_open
    half_open ──(a probe succeeds)──▶ closed
    half_open ──(a probe fails)──▶ open (the cool-down starts again)

Why not ``pybreaker``: its storage interface (``CircuitBreakerStorage``) reads and writes the state, the counter
and ``opened_at`` one field at a time, and its transitions run under an in-process lock.  Shared by several workers
that is a race: every process that reads ``half_open`` sends its own probe, and two processes can both count the
failure that opens the breaker.  Every transition here is one conditional ``UPDATE ... WHERE state = ...``
(a compare-and-set), so exactly one caller makes each transition, logs it and emits its event, and the number of
probes in flight across every worker never passes ``probes``.  The state machine is small enough that this is
simpler than bending a library around it.

What counts as a failure is the caller's decision (``tasks.circuit_guard``: 5xx, timeouts, connection errors);
this module only keeps the books.  Times are passed in, so the rules are tested without a clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.operations_tables import CircuitState, CircuitTransition, ProviderCircuit


@dataclass(frozen=True)
class BreakerRules:
    """The settings one breaker runs by (``blocks.operations.BreakerSettings`` in the Prefect world)."""

    consecutive_failures: int = 5
    cooldown_seconds: float = 15.0
    probes: int = 1
    pause_after_seconds: float = 600.0


@dataclass(frozen=True)
class Circuit:
    """One breaker's row as read."""

    tag: str
    state: str
    consecutive_failures: int
    opened_at: datetime | None
    outage_started_at: datetime | None
    probes_sent: int
    opened_count: int

    def outage_seconds(self, now: datetime) -> float:
        return (now - self.outage_started_at).total_seconds() if self.outage_started_at is not None else 0.0

    def cooldown_left(self, rules: BreakerRules, now: datetime) -> float:
        if self.state != CircuitState.OPEN or self.opened_at is None:
            return 0.0
        return max(0.0, rules.cooldown_seconds - (now - self.opened_at).total_seconds())


class Admission(Enum):
    """What a caller may do now."""

    CALL = "call"  # closed: go ahead
    PROBE = "probe"  # half-open and this caller holds one of the probes
    WAIT = "wait"  # open, or half-open with every probe out


@dataclass(frozen=True)
class Transition:
    """A state change this caller made (exactly one caller makes each)."""

    tag: str
    from_state: str
    to_state: str
    reason: str
    circuit: Circuit


def read(engine: Engine, tag: str) -> Circuit:
    """The breaker of ``tag``, created closed on first use."""
    with Session(engine) as session:
        row = session.get(ProviderCircuit, tag)
        found = _snapshot(row) if row is not None else None
    if found is None:
        try:
            with engine.begin() as conn:
                conn.execute(insert(ProviderCircuit).values(tag=tag, state=CircuitState.CLOSED))
        except IntegrityError:
            pass  # another worker created it first
        return read(engine, tag)
    return found


def read_all(engine: Engine) -> list[Circuit]:
    with Session(engine) as session:
        return [_snapshot(row) for row in session.scalars(select(ProviderCircuit).order_by(ProviderCircuit.tag))]


def _snapshot(row: ProviderCircuit) -> Circuit:
    return Circuit(
        tag=row.tag,
        state=row.state,
        consecutive_failures=row.consecutive_failures,
        opened_at=row.opened_at,
        outage_started_at=row.outage_started_at,
        probes_sent=row.probes_sent,
        opened_count=row.opened_count,
    )


def admit(engine: Engine, circuit: Circuit, rules: BreakerRules, now: datetime) -> tuple[Admission, Transition | None]:
    """May a call go out now?  Takes a probe (and makes the open → half-open move) when the cool-down is over."""
    if circuit.state == CircuitState.CLOSED:
        return Admission.CALL, None
    if circuit.state == CircuitState.OPEN:
        if circuit.cooldown_left(rules, now) > 0:
            return Admission.WAIT, None
        moved = _move(
            engine,
            circuit.tag,
            CircuitState.OPEN,
            CircuitState.HALF_OPEN,
            f"cool-down of {rules.cooldown_seconds:g} s over: probing",
            now,
            extra_where=(ProviderCircuit.opened_at == circuit.opened_at,),
            probes_sent=1,
        )
        if moved is not None:
            return Admission.PROBE, moved
        return Admission.WAIT, None  # another caller moved it first; read again
    with engine.begin() as conn:  # half-open: one of the probes, if any is left
        taken = conn.execute(
            update(ProviderCircuit)
            .where(
                ProviderCircuit.tag == circuit.tag,
                ProviderCircuit.state == CircuitState.HALF_OPEN,
                ProviderCircuit.probes_sent < rules.probes,
            )
            .values(probes_sent=ProviderCircuit.probes_sent + 1)
        ).rowcount
    return (Admission.PROBE if taken else Admission.WAIT), None


def record_success(engine: Engine, circuit: Circuit, now: datetime) -> Transition | None:
    """A counted call succeeded: a half-open breaker closes; a closed one forgets its run of failures.

    A success seen while the breaker is open came from a call sent before it opened: it does not close the
    breaker (only a probe does), so a straggler cannot release every waiting worker onto a provider still down.
    """
    if circuit.state == CircuitState.HALF_OPEN:
        return _move(
            engine,
            circuit.tag,
            CircuitState.HALF_OPEN,
            CircuitState.CLOSED,
            "probe succeeded",
            now,
            consecutive_failures=0,
            probes_sent=0,
            outage_started_at=None,
        )
    if circuit.state == CircuitState.CLOSED and circuit.consecutive_failures:
        with engine.begin() as conn:
            conn.execute(
                update(ProviderCircuit)
                .where(ProviderCircuit.tag == circuit.tag, ProviderCircuit.state == CircuitState.CLOSED)
                .values(consecutive_failures=0)
            )
    return None


def record_failure(engine: Engine, tag: str, rules: BreakerRules, now: datetime, error: str) -> Transition | None:
    """A counted call failed: count it, and open the breaker when the run of failures reaches the threshold
    (or re-open it when the failure was a probe's)."""
    circuit = read(engine, tag)
    if circuit.state == CircuitState.HALF_OPEN:
        return _open(engine, circuit, CircuitState.HALF_OPEN, f"probe failed: {error}", now)
    if circuit.state == CircuitState.OPEN:
        return None  # a call sent before the breaker opened
    with engine.begin() as conn:
        failures = conn.execute(
            update(ProviderCircuit)
            .where(ProviderCircuit.tag == tag, ProviderCircuit.state == CircuitState.CLOSED)
            .values(consecutive_failures=ProviderCircuit.consecutive_failures + 1, last_error=error[:500])
            .returning(ProviderCircuit.consecutive_failures)
        ).scalar()
    if failures is None or failures < rules.consecutive_failures:
        return None
    return _open(engine, circuit, CircuitState.CLOSED, f"{failures} failures in a row; last: {error}", now)


def trip(engine: Engine, tag: str, reason: str, now: datetime) -> Transition | None:
    """Open a closed breaker for a reason decided elsewhere (an error rate over a window)."""
    return _open(engine, read(engine, tag), CircuitState.CLOSED, reason, now)


def _open(engine: Engine, circuit: Circuit, from_state: str, reason: str, now: datetime) -> Transition | None:
    return _move(
        engine,
        circuit.tag,
        from_state,
        CircuitState.OPEN,
        reason,
        now,
        opened_at=now,
        probes_sent=0,
        opened_count=ProviderCircuit.opened_count + 1,
        outage_started_at=circuit.outage_started_at or now if from_state == CircuitState.HALF_OPEN else now,
    )


def _move(
    engine: Engine,
    tag: str,
    from_state: str,
    to_state: str,
    reason: str,
    now: datetime,
    *,
    extra_where: tuple[object, ...] = (),
    **values: object,
) -> Transition | None:
    """Compare-and-set the state; the transition row is written in the same transaction.  None: someone else
    moved it first."""
    with engine.begin() as conn:
        moved = conn.execute(
            update(ProviderCircuit)
            .where(ProviderCircuit.tag == tag, ProviderCircuit.state == from_state, *extra_where)  # type: ignore[arg-type]
            .values(state=to_state, changed_at=now, **values)
        ).rowcount
        if not moved:
            return None
        conn.execute(
            insert(CircuitTransition).values(tag=tag, from_state=from_state, to_state=to_state, reason=reason, at=now)
        )
    return Transition(tag, from_state, to_state, reason, read(engine, tag))


def transitions(engine: Engine, tag: str, since: datetime | None = None) -> list[CircuitTransition]:
    """The breaker's history, oldest first."""
    query = select(CircuitTransition).where(CircuitTransition.tag == tag)
    if since is not None:
        query = query.where(CircuitTransition.at >= since)
    with Session(engine, expire_on_commit=False) as session:
        return list(session.scalars(query.order_by(CircuitTransition.id)))


def reset(engine: Engine, tag: str, now: datetime) -> None:
    """Close a breaker by hand (an operator who knows the provider is back); recorded as a transition."""
    circuit = read(engine, tag)
    if circuit.state != CircuitState.CLOSED:
        _move(
            engine,
            tag,
            circuit.state,
            CircuitState.CLOSED,
            "reset by hand",
            now,
            consecutive_failures=0,
            probes_sent=0,
            outage_started_at=None,
        )
