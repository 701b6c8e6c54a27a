"""Call guards: what stands between a provider client and the provider (the circuit breaker, ``tasks.circuit_guard``).

Clients are built once per process by their blocks, long before a batch runs, and they call from whatever thread
their handler uses (enrichment waits on Parallel runs from a thread pool), so the guard is found by the provider
block's concurrency tag in a process-wide registry rather than passed down every call.  The task layer installs
the factory (the breaker needs the company database, which this layer knows nothing about); with none installed
(a client used on its own, a unit test) calls go out unguarded.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from core.errors import ProviderError


@dataclass
class GuardedCall:
    """What the guard remembers about one provider call across its attempts (one per ``RetryPolicy.call``)."""

    #: this attempt went out as a half-open probe
    probing: bool = False
    #: when this call's probe failed: it leaves the next probe to another call for a while (see the guard)
    probe_failed_at: Any = None
    #: the breaker as this attempt saw it when it was let through
    seen: Any = None
    #: since when this attempt has been waiting for the breaker (None while it is not waiting)
    waiting_since: Any = None


class CallGuard(Protocol):
    """Asked around every attempt of a provider call (``providers.http.RetryPolicy``)."""

    def before_call(self, call: GuardedCall) -> None:
        """Return when a call may go out; wait while the provider is known to be down.

        Raises ``ProviderOutageError`` when the outage has lasted too long: the action pauses.
        """

    def succeeded(self, call: GuardedCall) -> None:
        """The attempt got an answer."""

    def failed(self, call: GuardedCall, error: ProviderError) -> bool:
        """The attempt failed.  True when the failure belongs to an outage the guard now holds (the breaker is
        open): the caller waits for it and tries again without spending one of its retries."""
        ...


GuardFactory = Callable[[str], CallGuard | None]

_lock = threading.Lock()
_factory: GuardFactory | None = None


def install_guard_factory(factory: GuardFactory | None) -> None:
    """Set (or with None, remove) how guards are found for a concurrency tag, for the whole process."""
    global _factory
    with _lock:
        _factory = factory


def guard_for(tag: str | None) -> CallGuard | None:
    if tag is None:
        return None
    with _lock:
        factory = _factory
    return factory(tag) if factory is not None else None
