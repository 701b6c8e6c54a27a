"""The sandbox's in-memory state: configuration, limits, faults, jobs and stats, behind one object.

uvicorn serves the app from a single event loop and every method here is synchronous (no ``await`` between a
check and the update it guards), so each admission decision is atomic without locks. Nothing here may be
touched from another thread: ``SandboxServer`` goes through the admin endpoints.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from fastapi import Request

from sandbox.config import PROVIDERS, Provider, SandboxConfig
from sandbox.faults import FaultEngine
from sandbox.jobs import BatchStore, RunStore
from sandbox.limits import DAY_S, ProviderLimiter
from sandbox.outages import Outages
from sandbox.prices import run_charge
from sandbox.providers import RateSnapshot, Route
from sandbox.stats import Stats

MIN_CONCURRENCY_RETRY_S = 0.1


@dataclass(frozen=True)
class Rejection:
    """Why a request was not admitted and when to retry."""

    reason: Literal["requests", "concurrency"]
    limit: int
    retry_after: float


class SandboxState:
    """Everything the handlers and the gateway share."""

    def __init__(self, config: SandboxConfig) -> None:
        self.initial_config = config.model_copy(deep=True)
        self.config = config
        self.stats = Stats()
        self.limiters: dict[Provider, ProviderLimiter] = {p: ProviderLimiter() for p in PROVIDERS}
        self.faults = FaultEngine(config)
        self.outages = Outages()
        self.runs = RunStore()
        self.batches = BatchStore()
        self._shutdown = asyncio.Event()

    # --- admission -------------------------------------------------------------------------------------

    def admit(self, route: Route, now: float) -> Rejection | None:
        """Admit a request (count it, reserve its slot) or say why not; 429s leave no trace in the window."""
        cfg = self.config.section(route.provider)
        limiter = self.limiters[route.provider]
        rpm = cfg.requests_per_minute
        if route.rate_limited and rpm is not None:
            wait = limiter.window.retry_after(now, rpm, cfg.rate_window_s)
            if wait is not None:
                return Rejection("requests", rpm, wait)
        cap = cfg.max_concurrency
        if cap is not None and route.concurrency == "requests" and limiter.in_flight >= cap:
            # Nothing tells when an in-flight request ends; its latency is the best guess.
            return Rejection("concurrency", cap, max(MIN_CONCURRENCY_RETRY_S, cfg.latency_ms / 1000))
        if route.concurrency == "active_runs":
            if cap is not None and self.runs.active(now) + self.runs.reserved >= cap:
                wait = self.runs.next_slot_in(now)
                return Rejection("concurrency", cap, wait if wait is not None else MIN_CONCURRENCY_RETRY_S)
            self.runs.reserved += 1  # the caller must settle it: a run is created or the reservation released
        if route.rate_limited:
            limiter.window.add(now)
        limiter.day.add(now)
        limiter.enter(route.endpoint)
        self.stats.accepted(route.provider, route.endpoint, now, rate_counted=route.rate_limited)
        self.stats.concurrency(
            route.provider, route.endpoint, limiter.in_flight, limiter.in_flight_by_endpoint[route.endpoint]
        )
        return None

    def release(self, route: Route) -> None:
        """End an admitted request."""
        self.limiters[route.provider].leave(route.endpoint)

    def release_run_reservation(self) -> None:
        """Give back a run slot reserved at admission that did not become a run (refused or faulted)."""
        self.runs.reserved -= 1

    def rate_snapshot(self, provider: Provider, now: float) -> RateSnapshot:
        cfg = self.config.section(provider)
        limiter = self.limiters[provider]
        today = limiter.day.count(now, DAY_S)
        oldest_today = limiter.day.oldest()
        in_window = limiter.window.count(now, cfg.rate_window_s)
        oldest_in_window = limiter.window.oldest()
        return RateSnapshot(
            requests_today=today,
            day_reset_s=oldest_today + DAY_S - now if oldest_today is not None else 0.0,
            tokens_last_minute=limiter.tokens.used(now),
            tokens_reset_s=limiter.tokens.reset_in(now),
            requests_per_minute=cfg.requests_per_minute,
            requests_in_window=in_window,
            window_reset_s=oldest_in_window + cfg.rate_window_s - now if oldest_in_window is not None else 0.0,
        )

    # --- waiting ---------------------------------------------------------------------------------------

    async def sleep(self, seconds: float) -> bool:
        """Sleep, but wake at shutdown so a held response cannot stall the server; False when woken early."""
        if seconds <= 0:
            return True
        try:
            await asyncio.wait_for(self._shutdown.wait(), timeout=seconds)
        except TimeoutError:
            return True
        return False

    def bind_loop(self) -> None:
        """Start serving on the running loop: a fresh shutdown event, so a stopped server can start again."""
        self._shutdown = asyncio.Event()

    def begin_shutdown(self) -> None:
        self._shutdown.set()

    @property
    def shutting_down(self) -> bool:
        return self._shutdown.is_set()

    # --- admin -----------------------------------------------------------------------------------------

    def update_config(self, patch: Mapping[str, Any]) -> SandboxConfig:
        """Apply a partial update; providers whose faults or seed changed restart their rules and RNG."""
        new = self.config.patched(patch)
        for provider in PROVIDERS:
            if provider in patch and {"faults", "seed"} & set(patch[provider]):
                self.faults.load(provider, new.section(provider))
        self.config = new
        return new

    def reset(self, *, config: bool = False) -> None:
        """Forget stats, jobs, windows and fault counters; with ``config`` also restore the start config."""
        if config:
            self.config = self.initial_config.model_copy(deep=True)
        self.stats = Stats()
        self.runs.clear()
        self.batches.clear()
        for limiter in self.limiters.values():
            limiter.clear_windows()
        self.faults = FaultEngine(self.config)
        self.outages.clear()

    def settle_bills(self, now: float) -> None:
        """Bill the jobs that ended by ``now``: completed runs at their processor's price, and each succeeded
        item of an ended batch (its charge fixed at creation, at the batch discount)."""
        for run in self.runs.settle(now):
            self.stats.bill("parallel", "create_run", run_charge(run.processor))
        for batch in self.batches.settle(now):
            for item in batch.billable():
                if item.charge is not None:
                    self.stats.bill("anthropic", "batches_create", item.charge)

    def snapshot(self, *, log: bool, provider: str | None, contains: str | None) -> dict[str, Any]:
        now = time.monotonic()
        self.settle_bills(now)
        providers: dict[str, Any] = {}
        for name in PROVIDERS:
            snap = self.stats.provider_snapshot(name, self.config.section(name).rate_window_s)
            snap["in_flight"] = self.limiters[name].in_flight
            snap["fault_rules_fired"] = self.faults.fired(name)
            providers[name] = snap
        providers["parallel"].update(
            runs_created=self.runs.created,
            active_runs=self.runs.active(now),
            peak_active_runs=self.runs.peak_active,
        )
        providers["anthropic"]["batches_created"] = len(self.batches.batches)
        result: dict[str, Any] = {
            "started_at": self.stats.started_at,
            "now": time.time(),
            "providers": providers,
            "log_total": self.stats.log_total,
            "log_dropped": self.stats.log_total - len(self.stats.log),
        }
        if log:
            result["log"] = self.stats.log_snapshot(provider, contains)
        return result


def get_state(request: Request) -> SandboxState:
    """FastAPI dependency: the state the app was created with."""
    state = request.app.state.sandbox
    assert isinstance(state, SandboxState)
    return state
