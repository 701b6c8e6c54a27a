"""What the sandbox saw: counters per provider and endpoint, exact peaks, and a per-request log.

Tests and benchmarks judge a client by these numbers (did it ever exceed 30 requests in a minute? how many
calls did company X cost? what would the provider have billed?), so peaks are computed exactly from stored
timestamps instead of being sampled, and the bill is summed in integer nano-dollars (see :mod:`sandbox.prices`).
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from sandbox.config import PROVIDERS, Provider
from sandbox.prices import NANOUSD_PER_USD, Charge

PEAK_WINDOW_S = 60.0
LOG_LIMIT = 200_000  # bounds memory in long benchmarks; `log_dropped` says how many older entries were dropped


def peak_in_window(times: Sequence[float], window: float) -> int:
    """Largest number of timestamps in any window ``(t - window, t]`` (same convention as the limiter).

    ``times`` must be sorted; a two-pointer sweep makes this O(n).
    """
    best = 0
    start = 0
    for end, t in enumerate(times):
        while times[start] <= t - window:
            start += 1
        best = max(best, end - start + 1)
    return best


@dataclass
class Counters:
    """Counters of one provider or one endpoint."""

    received: int = 0
    accepted: int = 0
    rate_limited: int = 0
    rejected: int = 0  # refused before admission: missing key or version header
    faults: Counter[str] = field(default_factory=Counter)
    accepted_at: list[float] = field(default_factory=list)
    peak_concurrency: int = 0
    billed_calls: int = 0  # priced calls the provider would bill (answered 2xx, completed run, succeeded item)
    list_price_nanousd: int = 0  # their list price, in 1e-9 USD
    unpriced_calls: int = 0  # billable calls of a model (or processor) without a list price; add nothing
    web_search_requests: int = 0  # server-side searches of billable calls (priced ones are in list_price_nanousd)

    def bill(self, charge: Charge) -> None:
        self.web_search_requests += charge.web_search_requests
        if charge.nanousd is None:
            self.unpriced_calls += 1
        else:
            self.billed_calls += 1
            self.list_price_nanousd += charge.nanousd

    def snapshot(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "accepted": self.accepted,
            "rate_limited": self.rate_limited,
            "rejected": self.rejected,
            "faults": dict(self.faults),
            "faults_total": sum(self.faults.values()),
            "peak_window_60s": peak_in_window(self.accepted_at, PEAK_WINDOW_S),
            "peak_concurrency": self.peak_concurrency,
            "billed_calls": self.billed_calls,
            "list_price_nanousd": self.list_price_nanousd,
            "list_price_usd": self.list_price_nanousd / NANOUSD_PER_USD,  # for reading; compare the int
            "unpriced_calls": self.unpriced_calls,
            "web_search_requests": self.web_search_requests,
        }


@dataclass
class ProviderStats:
    """A provider's totals, its endpoints, and the timestamps of requests that count toward its rate limit."""

    total: Counters = field(default_factory=Counters)
    endpoints: dict[str, Counters] = field(default_factory=dict)
    rate_counted_at: list[float] = field(default_factory=list)

    def endpoint(self, name: str) -> Counters:
        return self.endpoints.setdefault(name, Counters())


@dataclass(frozen=True)
class LogEntry:
    """One request as the sandbox saw it; ``match_key`` identifies the work (company input, prompt start)."""

    provider: str
    endpoint: str
    method: str
    path: str
    time: float  # wall clock (epoch seconds) when the request arrived
    duration_ms: float
    status: int  # 0 when the connection was dropped
    match_key: str
    fault: str | None
    delivered: bool  # False when the client left before a held (`timeout`) response was sent


class Stats:
    """All counters; mutated only from the event loop, so no locks are needed."""

    def __init__(self) -> None:
        self.started_at = time.time()
        self.providers: dict[Provider, ProviderStats] = {p: ProviderStats() for p in PROVIDERS}
        self.log: deque[LogEntry] = deque(maxlen=LOG_LIMIT)
        self.log_total = 0

    def _both(self, provider: Provider, endpoint: str) -> tuple[Counters, Counters]:
        stats = self.providers[provider]
        return stats.total, stats.endpoint(endpoint)

    def received(self, provider: Provider, endpoint: str) -> None:
        for counters in self._both(provider, endpoint):
            counters.received += 1

    def rejected(self, provider: Provider, endpoint: str) -> None:
        for counters in self._both(provider, endpoint):
            counters.rejected += 1

    def rate_limited(self, provider: Provider, endpoint: str) -> None:
        for counters in self._both(provider, endpoint):
            counters.rate_limited += 1

    def accepted(self, provider: Provider, endpoint: str, now: float, *, rate_counted: bool) -> None:
        for counters in self._both(provider, endpoint):
            counters.accepted += 1
            counters.accepted_at.append(now)
        if rate_counted:
            self.providers[provider].rate_counted_at.append(now)

    def concurrency(self, provider: Provider, endpoint: str, provider_level: int, endpoint_level: int) -> None:
        total, per_endpoint = self._both(provider, endpoint)
        total.peak_concurrency = max(total.peak_concurrency, provider_level)
        per_endpoint.peak_concurrency = max(per_endpoint.peak_concurrency, endpoint_level)

    def fault(self, provider: Provider, endpoint: str, kind: str) -> None:
        for counters in self._both(provider, endpoint):
            counters.faults[kind] += 1

    def bill(self, provider: Provider, endpoint: str, charge: Charge) -> None:
        """Add one billable call (``endpoint``: where it was requested, e.g. ``create_run`` for a run)."""
        for counters in self._both(provider, endpoint):
            counters.bill(charge)

    def record(self, entry: LogEntry) -> None:
        self.log.append(entry)
        self.log_total += 1

    def provider_snapshot(self, provider: Provider, rate_window_s: float) -> dict[str, Any]:
        stats = self.providers[provider]
        snap = stats.total.snapshot()
        # Provider level: the requests that count toward requests_per_minute (for Parallel only run creations,
        # not status polls), so the peak is directly comparable with the configured limit.
        snap["peak_window_60s"] = peak_in_window(stats.rate_counted_at, PEAK_WINDOW_S)
        snap["rate_window_s"] = rate_window_s
        snap["peak_rate_window"] = peak_in_window(stats.rate_counted_at, rate_window_s)
        snap["endpoints"] = {name: c.snapshot() for name, c in sorted(stats.endpoints.items())}
        return snap

    def log_snapshot(self, provider: str | None = None, contains: str | None = None) -> list[dict[str, Any]]:
        entries = (
            e
            for e in self.log
            if (provider is None or e.provider == provider) and (contains is None or contains in e.match_key)
        )
        return [asdict(e) for e in entries]
