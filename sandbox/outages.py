"""Outage windows: every request to a provider answers 5xx from now for a number of seconds.

Unlike a fault rule (a share of requests, drawn from a seeded RNG), an outage is a stretch of wall-clock time,
which is what a circuit breaker is for: ``POST /_sandbox/outage {"provider": "groq", "seconds": 30}`` makes the
provider fail every request for the next 30 s, then recover by itself.  The window's start and end (epoch
seconds) are answered and listed, so a test can compare them with the request log's times.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Outage:
    provider: str
    start: float
    end: float
    status: int


class Outages:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._windows: list[Outage] = []

    def start(self, provider: str, seconds: float, status: int = 503, *, now: float | None = None) -> Outage:
        begin = time.time() if now is None else now
        outage = Outage(provider=provider, start=begin, end=begin + seconds, status=status)
        with self._lock:
            self._windows.append(outage)
        return outage

    def status_at(self, provider: str, when: float) -> int | None:
        """The 5xx status a request of ``provider`` arriving at ``when`` meets, or None outside every window."""
        with self._lock:
            for outage in self._windows:
                if outage.provider == provider and outage.start <= when < outage.end:
                    return outage.status
        return None

    def listed(self) -> list[dict[str, Any]]:
        with self._lock:
            return [asdict(o) for o in self._windows]

    def clear(self) -> None:
        with self._lock:
            self._windows.clear()
