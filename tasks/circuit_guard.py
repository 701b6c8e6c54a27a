"""The circuit breaker around every provider call: one per provider concurrency tag, shared by every worker.

``core.circuit`` keeps the state in the company database; this module decides what counts and what a caller
does while the provider is down:

- **Counted:** 5xx answers, timeouts and connection errors.  Not counted: 429s (the pacer's job), 4xx and one
  company's invalid output, which say nothing about the provider's health.
- **Opening:** ``consecutive_failures`` failures in a row across every worker (shared), or an error rate of
  ``error_rate`` over ``window_seconds`` in this process (each worker judges the sample it sees; a window shared
  through the database would cost a write per successful call).
- **While open:** no call goes out.  The caller waits (polling the shared state), so its batch waits, no
  company fails and no dead job is written for the outage; after the cool-down one caller per probe goes out.
  When the outage has lasted ``pause_after_seconds`` the waiting callers raise ``ProviderOutageError``: the batch
  stops like a budget stop and the action pauses with that reason.
- **Visibility:** each transition is made by exactly one caller, which logs it and emits ``bulkai.circuit.*``
  (``core.events``); the engine's progress artifact shows the breaker of its provider.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from sqlalchemy import Engine

from blocks.database import CompanyDatabase
from blocks.operations import BreakerSettings, load_operations_policy
from core import circuit, events
from core.circuit import Admission, BreakerRules, Circuit, Transition
from core.errors import (
    ProviderConnectionError,
    ProviderError,
    ProviderOutageError,
    ProviderServerError,
    ProviderTimeoutError,
)
from core.operations_tables import CircuitState
from core.schema import utcnow
from providers.guards import CallGuard, GuardedCall, install_guard_factory
from tasks.events import emit

#: how often a waiting caller reads the shared state (also the worst delay between a probe's success and the rest)
POLL_SECONDS = 0.5

_logger = logging.getLogger("bulkai.circuit")


def counts_as_outage(error: ProviderError) -> bool:
    """Whether a failed call says the provider is unwell (rather than the request or the company being bad)."""
    if isinstance(error, ProviderServerError):
        return error.status_code is None or error.status_code >= 500
    return isinstance(error, ProviderTimeoutError | ProviderConnectionError)


def rules_of(settings: BreakerSettings) -> BreakerRules:
    return BreakerRules(
        consecutive_failures=settings.consecutive_failures,
        cooldown_seconds=settings.cooldown_seconds,
        probes=settings.probes,
        pause_after_seconds=settings.pause_after_seconds,
    )


class _Window:
    """This process's calls to one provider over the last ``seconds``: (when, failed)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._calls: deque[tuple[float, bool]] = deque()
        self._lock = threading.Lock()

    def add(self, failed: bool) -> tuple[int, int]:
        """Record a call; returns (calls, failures) in the window."""
        now = time.monotonic()
        with self._lock:
            self._calls.append((now, failed))
            while self._calls and self._calls[0][0] < now - self.seconds:
                self._calls.popleft()
            return len(self._calls), sum(f for _, f in self._calls)

    def clear(self) -> None:
        with self._lock:
            self._calls.clear()


class CircuitGuard(CallGuard):
    """The breaker of one provider tag, as seen from this process."""

    def __init__(self, engine: Engine, tag: str, settings: BreakerSettings) -> None:
        self.engine = engine
        self.tag = tag
        self.settings = settings
        self.rules = rules_of(settings)
        self._window = _Window(settings.window_seconds)
        # Prefect's settings live in context variables, which the threads a handler starts do not inherit:
        # events are sent from the context the guard was built in.
        self._context = contextvars.copy_context()

    # --- CallGuard --------------------------------------------------------------------------------------

    def before_call(self, call: GuardedCall) -> None:
        call.probing = False
        while True:
            now = utcnow()
            state = circuit.read(self.engine, self.tag)
            if self._leaves_probe_to_others(call, state, now):
                admission, moved = Admission.WAIT, None
            else:
                admission, moved = circuit.admit(self.engine, state, self.rules, now)
            if moved is not None:
                self._announce(moved, now)
            if admission is not Admission.WAIT:
                call.waiting_since = None
                call.probing = admission is Admission.PROBE
                call.seen = state if moved is None else moved.circuit
                return
            # a long outage pauses the action, but only once this call has itself waited through a probe cycle:
            # a resumed action gets its chance to find the provider back before it pauses again
            call.waiting_since = call.waiting_since or now
            outage = state.outage_seconds(now)
            waited = (now - call.waiting_since).total_seconds()
            if outage >= self.rules.pause_after_seconds and waited >= self.rules.cooldown_seconds + POLL_SECONDS:
                raise ProviderOutageError(self.tag, outage)
            wait = state.cooldown_left(self.rules, now) if state.state == CircuitState.OPEN else POLL_SECONDS
            time.sleep(min(max(wait, 0.05), POLL_SECONDS))

    def _leaves_probe_to_others(self, call: GuardedCall, state: Circuit, now: datetime) -> bool:
        """A call whose probe failed lets another call take the next probe: its failure may be its own
        request's (a company the provider always fails on), and a breaker re-opened by the same request every
        time would keep a healthy provider closed off.  The bar lasts for the open spell its own failure began:
        once another call's probe has failed too, or nobody else probed for a whole extra cool-down (it is
        alone), it may probe again."""
        if call.probe_failed_at is None or state.state != CircuitState.OPEN or state.opened_at is None:
            return False
        if state.opened_at > call.probe_failed_at:
            return False  # another call's probe has failed since: this one may probe again
        return (now - state.opened_at).total_seconds() < 2 * self.rules.cooldown_seconds

    def succeeded(self, call: GuardedCall) -> None:
        self._window.add(False)
        seen: Circuit | None = call.seen
        if seen is None or (seen.state == CircuitState.CLOSED and not seen.consecutive_failures):
            return  # the common case costs no write
        now = utcnow()
        moved = circuit.record_success(self.engine, seen, now)
        if moved is not None:
            self._window.clear()  # the outage's failures say nothing about the provider now
            self._announce(moved, now, outage=seen.outage_seconds(now))

    def failed(self, call: GuardedCall, error: ProviderError) -> bool:
        """Count the failure; True (do not spend a retry, wait for the breaker) when the breaker is open now.

        Every counted attempt feeds the breaker, but only attempts made while it was closed spend the call's
        retries: an attempt that failed because the provider is down, or a failed probe, waits for recovery.
        """
        if not counts_as_outage(error):
            return False
        now = utcnow()
        message = f"{type(error).__name__}: {error}"[:300]
        moved = circuit.record_failure(self.engine, self.tag, self.rules, now, message)
        calls, failures = self._window.add(True)
        if moved is None and calls >= self.settings.window_min_calls and failures / calls >= self.settings.error_rate:
            reason = f"{failures} of {calls} calls failed in {self.settings.window_seconds:g} s; last: {message}"
            moved = circuit.trip(self.engine, self.tag, reason, now)
        if moved is not None:
            self._announce(moved, now)
        if call.probing:
            call.probe_failed_at = now
            return True
        return circuit.read(self.engine, self.tag).state != CircuitState.CLOSED

    # --- visibility -------------------------------------------------------------------------------------

    def _announce(self, moved: Transition, now: datetime, outage: float | None = None) -> None:
        state = moved.circuit
        outage = state.outage_seconds(now) if outage is None else outage
        level = logging.WARNING if moved.to_state == CircuitState.OPEN else logging.INFO
        _log(level, "provider %r circuit %s → %s: %s", self.tag, moved.from_state, moved.to_state, moved.reason)
        payloads: dict[str, tuple[str, dict[str, object]]] = {
            CircuitState.OPEN: (
                events.CIRCUIT_OPENED,
                {"reason": moved.reason, "consecutive_failures": state.consecutive_failures, "outage_seconds": outage},
            ),
            CircuitState.HALF_OPEN: (events.CIRCUIT_HALF_OPENED, {"probes": self.rules.probes}),
            CircuitState.CLOSED: (events.CIRCUIT_CLOSED, {"outage_seconds": outage}),
        }
        name, payload = payloads[moved.to_state]
        if moved.from_state == CircuitState.HALF_OPEN and moved.to_state == CircuitState.OPEN:
            # not a new outage: one alert per outage, not one per cool-down
            name, payload = events.CIRCUIT_REOPENED, {"reason": moved.reason, "outage_seconds": outage}
        self._context.copy().run(emit, name, events.circuit_resource(self.tag), {"tag": self.tag, **payload})


def _log(level: int, message: str, *args: object) -> None:
    """To the flow or task run's log when there is one (it reaches the UI), else to the process log."""
    try:
        from prefect import get_run_logger

        get_run_logger().log(level, message, *args)
    except Exception:  # noqa: BLE001 - no run context in this thread
        _logger.log(level, message, *args)


_guards: dict[tuple[str, str], CircuitGuard] = {}
_guards_lock = threading.Lock()


_installed: list[str] = []  # the database URL of every guarding() block open in this process


@contextmanager
def guarding(database: CompanyDatabase) -> Iterator[None]:
    """Guard every provider call made while the block runs (in any thread of this process) with the breakers
    kept in ``database`` (``providers.guards``).  Outside every such block (a client used on its own) calls go
    out unguarded."""
    engine = database.get_engine()
    url = str(engine.url)

    def factory(tag: str) -> CallGuard:
        with _guards_lock:
            guard = _guards.get((url, tag))
            if guard is None:
                guard = CircuitGuard(engine, tag, load_operations_policy().breaker_for(tag))
                _guards[(url, tag)] = guard
            return guard

    with _guards_lock:
        _installed.append(url)
        install_guard_factory(factory)
    try:
        yield
    finally:
        with _guards_lock:
            _installed.remove(url)
            if not _installed:
                install_guard_factory(None)


def forget_guards() -> None:
    """Drop the cached guards (a test that changes the operations policy)."""
    with _guards_lock:
        _guards.clear()


def describe_circuit(database: CompanyDatabase, tag: str) -> str:
    """One line on the provider's breaker for a progress artifact; empty while it is closed."""
    state = circuit.read(database.get_engine(), tag)
    if state.state == CircuitState.CLOSED:
        return ""
    outage = state.outage_seconds(utcnow())
    what = "open: batches wait" if state.state == CircuitState.OPEN else "half-open: probing"
    return f"provider {tag!r} circuit {what} (outage {outage:.0f} s)"
