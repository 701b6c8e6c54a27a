"""Client-side pacing that holds a provider's requests-per-window limit exactly, in one process and across many.

GROQ limits requests per minute but only says so with a 429 after the fact (its ``x-ratelimit-*-requests``
headers count per *day*), so the client must never send the request that would exceed the limit.

The model: a request holds a **permit** from just before it is sent until ``window`` seconds after its answer
(or error) came back.  Every request that reached the provider inside a window ``(t - window, t]`` was sent
before ``t`` and answered after it arrived, so it still holds its permit at ``t``: with ``limit`` permits, no
window the provider can look at ever holds more than ``limit`` requests.  Anchoring on the answer rather than
on the send is the conservative choice (the provider's clock starts somewhere in between); it costs
``latency / (window + latency)`` of the budget, under 2 % for a one-second call in a 60-s window.  Each attempt
of a retried call takes its own permit, and a failed or timed-out request keeps its permit for the full window,
because it may have been counted.

Permits exist at two levels, and a request needs both:

* :class:`SlidingWindowLimiter`, in process: ``limit`` permits and a condition variable.  A waiting request
  wakes up the moment a permit comes back, so one process reaches the full budget (the window is exact, not a
  fixed per-minute bucket that allows ``2 x limit`` around a bucket edge).
* :class:`PrefectWindowSlots`, shared by every process that talks to the same Prefect server: the permit is a
  slot of a Prefect global concurrency limit ``window:<tag>`` (``limit`` slots, **no** slot decay), taken with
  a lease and released by the same timer that returns the local permit.  So the sum over all processes, flow
  runs and workers is held exactly too.  If a process dies holding slots, the server frees them when their
  lease expires (``lease_seconds`` after they were taken, always longer than the window): late, never early.
  A process that exits normally hands its outstanding slots over first: each lease is shortened to end when
  its permit is due (never less than the server's one-minute minimum), so the next flow run on the same
  budget does not wait out leases sized for a crash.

A permit comes back to the local limiter only after its Prefect slot has been released, so within a process
the shared limit never refuses a slot (no 423s, no server-suggested back-off); only when several processes
share the budget does a request wait on the server, polling at most every ``window / limit`` seconds.

Why not the alternatives:

* ``rate_limit()`` on a decaying limit (``rate:<tag>``) is a token bucket: a full bucket lets ``limit``
  requests through at once and then refills, so a 60-s window can hold up to ``2 x limit`` (measured: 643 in a
  window at 600/min); and the server floors the decay on every update, which at low rates paces at ~70 % of the
  limit (see DESIGN.md).  Neither exact nor reliably full.
* Holding a ``tag:<tag>`` slot per call deadlocks: the engine already holds that limit's slots (one per batch
  in flight, as flow-run leases) for the whole action, so a call waiting for one more would wait for ever.
  Those slots already bound how many calls are in flight (a batch calls sequentially), which is their job.

Every tag has its own pacer (own permits, own release thread), so one provider's pacing never waits on
another's.  The costs: two Prefect API calls per provider request (~12 ms each on a local server); on a Prefect
server backed by SQLite, a call that collides with another write gets a 503 that Prefect's client retries after
~2 s (time lost, never budget); and pacing needs the ``window:<tag>`` limit to exist (a missing limit is a
``ConfigurationError``, never "no limit").

Measured (``bench/bench_scoring.py``, sandbox enforcing 600 requests per sliding 60 s, 660 calls from two
batches in flight): 600 requests in the first minute, none refused, peak window 600.
"""

from __future__ import annotations

import atexit
import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID

from core.errors import ConfigurationError

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient

logger = logging.getLogger(__name__)

#: the Prefect server refuses leases shorter than a minute
MIN_LEASE_SECONDS = 60.0
#: how long to wait at most between two tries for a shared slot another process holds
MAX_SHARED_RETRY_SECONDS = 2.0
#: and at least (a floor on the load a waiting process puts on the Prefect API)
MIN_SHARED_RETRY_SECONDS = 0.02


def window_limit_name(tag: str) -> str:
    """The Prefect global concurrency limit that holds ``tag``'s requests per window across processes."""
    return f"window:{tag}"


class SlidingWindowLimiter:
    """``limit`` permits in one process; a permit is returned by whoever took it, when its window has passed."""

    def __init__(self, limit: int, window_seconds: float) -> None:
        if limit < 1 or window_seconds <= 0:
            raise ValueError("limit must be at least 1 and window_seconds positive")
        self.window_seconds = window_seconds
        self._limit = limit
        self._held = 0
        self._cond = threading.Condition()

    @property
    def limit(self) -> int:
        return self._limit

    @property
    def held(self) -> int:
        """Permits out now: requests in flight plus requests answered less than a window ago."""
        return self._held

    def set_limit(self, limit: int) -> None:
        """Change the budget in place; permits already out stay counted (lowering it never lets more through)."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        with self._cond:
            self._limit = limit
            self._cond.notify_all()

    def acquire(self) -> None:
        """Block until a permit is free and take it."""
        with self._cond:
            while self._held >= self._limit:
                self._cond.wait()
            self._held += 1

    def release(self) -> None:
        with self._cond:
            if self._held <= 0:
                raise RuntimeError("release without a matching acquire")
            self._held -= 1
            self._cond.notify()


class SharedWindow(Protocol):
    """Permits shared with other processes (see :class:`PrefectWindowSlots`)."""

    name: str

    def limit(self) -> int:
        """The shared budget per window."""
        ...

    def acquire(self) -> object:
        """Block until a shared permit is held; returns the token to release it with."""
        ...

    def release(self, token: object) -> None: ...

    def reachable(self) -> bool:
        """Whether the shared store answers now (checked once before a hand-over at exit)."""
        ...

    def expire_in(self, token: object, seconds: float) -> None:
        """Have the permit come back by itself ``seconds`` from now (the process is going away)."""
        ...


@dataclass(frozen=True)
class _Lease:
    client: SyncPrefectClient
    lease_id: UUID


_api_locks: dict[str, threading.Lock] = {}
_api_locks_guard = threading.Lock()


def _api_lock(name: str) -> threading.Lock:
    with _api_locks_guard:
        return _api_locks.setdefault(name, threading.Lock())


class PrefectWindowSlots:
    """Permits as slots of a Prefect global concurrency limit (no decay), held under a lease.

    The lease outlives the permit (``lease_seconds`` > window + one call), so it only matters when a process
    dies: the server then frees the slot at lease expiry instead of never.

    A process makes its calls on one window one at a time (acquires from the batch threads, releases from the
    timer): a Prefect server on SQLite answers concurrent writes to one limit row with 503 ("database is
    locked"), which its client retries only after ~2 s.  Serialised, a call takes ~12 ms, far below any budget
    the window holds; several processes can still collide, which costs them time but never the limit.
    """

    def __init__(self, name: str, *, lease_seconds: float, max_retry_seconds: float = MAX_SHARED_RETRY_SECONDS) -> None:
        self.name = name
        self.lease_seconds = max(MIN_LEASE_SECONDS, lease_seconds)
        self.max_retry_seconds = max(MIN_SHARED_RETRY_SECONDS, max_retry_seconds)
        self._clients: dict[str, SyncPrefectClient] = {}
        self._lock = threading.Lock()
        self._api = _api_lock(name)

    def _client(self) -> SyncPrefectClient:
        """One client per API URL, opened on first use (a client per call costs 3x the API call itself)."""
        from prefect.client.orchestration import get_client
        from prefect.settings import PREFECT_API_URL

        url = str(PREFECT_API_URL.value() or "ephemeral")
        with self._lock:
            client = self._clients.get(url)
            if client is None:
                client = get_client(sync_client=True)
                client.__enter__()
                self._clients[url] = client
            return client

    def limit(self) -> int:
        from prefect.exceptions import ObjectNotFound

        try:
            found = self._client().read_global_concurrency_limit_by_name(self.name)
        except ObjectNotFound:
            found = None
        if found is None or not found.active or found.limit < 1:
            raise ConfigurationError(
                f"no active Prefect concurrency limit {self.name!r}: it holds this provider's requests per "
                "window across processes. Create it with as many slots as the provider allows per window and "
                "no slot decay (python -m deployments.provision_limits, or Prefect UI → Concurrency)."
            )
        return int(found.limit)

    def acquire(self) -> object:
        import httpx

        client = self._client()
        while True:
            try:
                with self._api:
                    response = client.increment_concurrency_slots_with_lease(
                        names=[self.name], slots=1, mode="concurrency", lease_duration=self.lease_seconds
                    )
            except httpx.HTTPStatusError as exc:
                if exc.response.status_code != 423:
                    raise
                # Another process holds the budget.  The server's Retry-After grows with the queue; polling at
                # most every ``max_retry_seconds`` (the blocks pass one slot's share of the window) notices a
                # freed slot about as soon as it would come back in one process.
                wait = float(exc.response.headers.get("Retry-After") or self.max_retry_seconds)
                time.sleep(min(max(wait, MIN_SHARED_RETRY_SECONDS), self.max_retry_seconds))
                continue
            body: dict[str, Any] = response.json()
            if not body.get("limits"):
                with self._api:
                    client.release_concurrency_slots_with_lease(body["lease_id"])
                raise ConfigurationError(f"Prefect concurrency limit {self.name!r} disappeared or is inactive")
            return _Lease(client, UUID(str(body["lease_id"])))

    def release(self, token: object) -> None:
        if not isinstance(token, _Lease):
            raise TypeError("not a lease of this window")
        with self._api:
            token.client.release_concurrency_slots_with_lease(token.lease_id)

    def reachable(self) -> bool:
        """Whether the Prefect API answers right now (one quick probe, no client retries)."""
        import httpx

        with self._lock:
            clients = list(self._clients.values())
        try:
            return all(
                httpx.get(f"{str(c.api_url).rstrip('/')}/health", timeout=1.0).status_code == 200 for c in clients
            )
        except httpx.HTTPError:
            return False

    def expire_in(self, token: object, seconds: float) -> None:
        """Let the slot go ``seconds`` from now (at least the server's minimum lease) without anyone releasing it."""
        if not isinstance(token, _Lease):
            raise TypeError("not a lease of this window")
        with self._api:
            token.client.renew_concurrency_lease(token.lease_id, lease_duration=max(MIN_LEASE_SECONDS, seconds))


@dataclass(order=True)
class _Due:
    at: float
    seq: int
    action: Callable[[], None] = field(compare=False)


class _ReleaseTimer:
    """One daemon thread per pacer that runs each release when it is due (in due order)."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._heap: list[_Due] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def schedule(self, at: float, action: Callable[[], None]) -> None:
        with self._cond:
            heapq.heappush(self._heap, _Due(at, next(self._seq), action))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=f"pacer-{self._name}", daemon=True)
                self._thread.start()
            self._cond.notify()

    def pending(self) -> int:
        with self._cond:
            return len(self._heap)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._heap or self._heap[0].at > time.monotonic():
                    self._cond.wait(timeout=(self._heap[0].at - time.monotonic()) if self._heap else None)
                due = heapq.heappop(self._heap)
            try:
                due.action()
            except Exception:  # noqa: BLE001 - the timer must outlive any single failed release
                logger.exception("pacer %s: a scheduled release failed", self._name)


class Pacer:
    """What a client calls around each request: ``with pacer.permit(): send()``.

    Takes a local permit, then a shared one (if configured); when the request is over, schedules both to come
    back one window later: the shared one first, then the local one (see the module docstring for why).
    """

    def __init__(self, tag: str, limiter: SlidingWindowLimiter, shared: SharedWindow | None = None) -> None:
        self.tag = tag
        self.limiter = limiter
        self.shared = shared
        self._timer = _ReleaseTimer(tag)
        self._outstanding: dict[int, tuple[float, object]] = {}  # shared permits not yet given back: due, token
        self._outstanding_lock = threading.Lock()
        self._ids = itertools.count()

    @property
    def window_seconds(self) -> float:
        return self.limiter.window_seconds

    @contextmanager
    def permit(self) -> Iterator[None]:
        self.limiter.acquire()
        token: object = None
        try:
            if self.shared is not None:
                token = self.shared.acquire()
        except BaseException:
            self.limiter.release()
            raise
        try:
            yield
        finally:
            due = time.monotonic() + self.window_seconds
            key = next(self._ids)
            if self.shared is not None:
                with self._outstanding_lock:
                    self._outstanding[key] = (due, token)
            self._timer.schedule(due, lambda: self._give_back(key, token))

    def _give_back(self, key: int, token: object) -> None:
        try:
            if self.shared is not None:
                with self._outstanding_lock:
                    if self._outstanding.pop(key, None) is None:
                        return  # handed to the server at exit (see ``hand_over_at_exit``)
                self.shared.release(token)
        except Exception:  # noqa: BLE001 - the lease expires on its own; the local permit must come back
            logger.warning("pacer %s: could not release a shared slot; its lease will expire", self.tag)
        finally:
            self.limiter.release()

    def hand_over_at_exit(self) -> int:
        """Before the process exits, let each shared permit still out expire at its due time (or now).

        The timer thread that would release them dies with the process, and their leases were sized for a
        process that dies mid-call (window + call timeout + margin): without this, the last window's permits
        would stay taken a minute or more beyond their window, starving the next flow run on the same budget.
        Returns how many permits were handed over.
        """
        if self.shared is None:
            return 0
        with self._outstanding_lock:
            outstanding, self._outstanding = self._outstanding, {}
        if outstanding and not self.shared.reachable():
            return 0  # the server is gone (a test harness, say): nothing to hand over to, the leases expire there
        now = time.monotonic()
        for due, token in outstanding.values():
            try:
                if due <= now:
                    self.shared.release(token)
                else:
                    self.shared.expire_in(token, due - now)
            except Exception:  # noqa: BLE001 - the lease still expires on its own, only later
                logger.warning("pacer %s: could not shorten a shared slot's lease at exit", self.tag)
        return len(outstanding)

    def pending_releases(self) -> int:
        return self._timer.pending()


_pacers: dict[str, Pacer] = {}
_pacers_lock = threading.Lock()


#: how long exit waits at most for the hand-over (the Prefect server may be gone, and its client retries)
EXIT_HAND_OVER_SECONDS = 5.0


@atexit.register
def _hand_over_shared_permits() -> None:
    with _pacers_lock:
        pacers = [p for p in _pacers.values() if p.shared is not None]
    if not pacers:
        return

    def hand_over() -> None:
        for pacer in pacers:
            pacer.hand_over_at_exit()

    # A daemon thread with a bounded wait: exit must never hang on an unreachable server; if it is gone, the
    # leases simply expire as sized.
    thread = threading.Thread(target=hand_over, name="pacer-exit", daemon=True)
    thread.start()
    thread.join(timeout=EXIT_HAND_OVER_SECONDS)


def pacer_for(
    tag: str,
    *,
    requests_per_window: int,
    window_seconds: float = 60.0,
    shared: Callable[[], SharedWindow] | None = None,
) -> Pacer:
    """The process-wide pacer of ``tag``: every client of one provider tag shares one budget.

    ``shared`` builds the cross-process window on first use; the local budget is the smaller of
    ``requests_per_window`` and the shared limit, so the two never disagree.  A later call with another budget
    updates it in place (permits out stay counted); another window length or sharing mode for a tag already in
    use is refused, because it would forget requests made in the current window.
    """
    with _pacers_lock:
        pacer = _pacers.get(tag)
        if pacer is None:
            window = shared() if shared is not None else None
            limit = min(requests_per_window, window.limit()) if window is not None else requests_per_window
            pacer = Pacer(tag, SlidingWindowLimiter(limit, window_seconds), window)
            _pacers[tag] = pacer
            logger.info(
                "pacing %r at %d requests per %.0f s (%s)",
                tag,
                limit,
                window_seconds,
                f"shared through {window.name}" if window is not None else "this process only",
            )
            return pacer
    if pacer.window_seconds != window_seconds or (pacer.shared is None) != (shared is None):
        raise ConfigurationError(
            f"provider tag {tag!r} is already paced per {pacer.window_seconds:g} s "
            f"({'shared' if pacer.shared else 'local'}) in this process; give the other block its own tag"
        )
    limit = min(requests_per_window, pacer.shared.limit()) if pacer.shared is not None else requests_per_window
    if limit != pacer.limiter.limit:
        pacer.limiter.set_limit(limit)
    return pacer
