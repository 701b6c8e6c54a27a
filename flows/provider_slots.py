"""Provider slots held by a bulk action for its whole run, instead of one acquisition per task.

Prefect enforces a provider's limit through the global concurrency limit ``tag:<provider tag>``.  Letting the
task engine acquire a slot for every batch task is exact but slow: on this 2-core machine Prefect 3.9.1 spends
about a second per tagged task (40 no-op tasks with a limit of 8: 43-51 s tagged against 0.5 s untagged, on
``prefect server start`` and on the test harness alike, the server idle meanwhile), which would cap a bulk
action at about one batch per second.

So the engine takes the slots itself: one lease per slot, held by the flow run, acquired when the action starts
(waiting for the first, taking the others only while they are free), renewed while it runs, given back as the
tail drains and at the end.  Batches in flight never outnumber slots held, and slots held across every flow run
and worker never exceed the limit, so the provider limit holds exactly; a run whose process dies loses its
slots when the leases expire, or at once when another run takes its bulk action over.

Given the company database, the slots follow the bulk actions' priorities (``core.slot_priority``): the run
keeps a ``slot_requests`` row (what it holds and wants, since when it waits, a heartbeat on every lease
renewal), takes a free slot only when no live waiter of another action ranks above it, and gives one back at a
batch boundary when one does (``rebalance``, called by the batch loop); a run that gave its last slot away waits
again under the same rules.  Nobody waiting costs one indexed query per batch boundary.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from uuid import UUID

import httpx
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.objects import ConcurrencyLeaseHolder
from prefect.exceptions import ObjectNotFound

from core.errors import MissingProviderLimitError
from core.slot_priority import Claim, may_take_slot, must_yield_slot
from core.slot_requests import action_priority, delete_claim, heartbeat, live_waiters, record_claim

if TYPE_CHECKING:
    from blocks.database import CompanyDatabase

LEASE_SECONDS = 300.0
RENEW_EVERY_SECONDS = 60.0
#: a waiter looks again at least this often (a slot given back to it is taken within this)
WAIT_POLL_SECONDS = 0.5
#: a waiter's heartbeat, well inside core.slot_priority.STALE_AFTER_SECONDS
WAITER_HEARTBEAT_SECONDS = 10.0


def limit_name(tag: str) -> str:
    return f"tag:{tag}"


def provider_limit(client: SyncPrefectClient, tag: str) -> int:
    """The provider's concurrency limit; a missing or inactive limit is an error, never 'unlimited'."""
    try:
        limit = client.read_global_concurrency_limit_by_name(limit_name(tag))
    except ObjectNotFound:
        raise MissingProviderLimitError(tag) from None
    if not limit.active or limit.limit < 1:
        raise MissingProviderLimitError(tag)
    return int(limit.limit)


class ProviderSlots:
    """Up to ``wanted`` slots of one provider's limit, each a lease held by ``holder_flow_run_id``.

    With ``db``, the slots are shared by priority (module docstring); without it, first come, first served.
    """

    def __init__(self, tag: str, holder_flow_run_id: str, db: CompanyDatabase | None = None) -> None:
        self.tag = tag
        self._flow_run_id = holder_flow_run_id
        self._holder = ConcurrencyLeaseHolder(type="flow_run", id=UUID(holder_flow_run_id))
        self._client = get_client(sync_client=True)
        self._client.__enter__()
        self._leases: list[UUID] = []
        self._renewed_at = time.monotonic()
        self.limit = provider_limit(self._client, tag)
        self._db = db
        self.bulk_action_id: int | None = None
        self.priority = 0
        self.wanted = 0
        self._claim: Claim | None = None
        self._recorded: tuple[int, int] | None = None  # (held, wanted) as last written
        self._beat_at = 0.0

    def __len__(self) -> int:
        return len(self._leases)

    def _try_acquire(self) -> tuple[bool, float]:
        """One attempt; returns (acquired, seconds to wait before the next attempt)."""
        try:
            response = self._client.increment_concurrency_slots_with_lease(
                names=[limit_name(self.tag)],
                slots=1,
                mode="concurrency",
                lease_duration=LEASE_SECONDS,
                holder=self._holder,
            )
        except httpx.HTTPStatusError as exc:
            if exc.response.status_code != 423:
                raise
            return False, float(exc.response.headers.get("Retry-After", "1"))
        body = response.json()
        if not body.get("limits"):
            raise MissingProviderLimitError(self.tag)
        self._leases.append(UUID(body["lease_id"]))
        return True, 0.0

    def acquire(
        self,
        wanted: int,
        *,
        should_stop: Callable[[], bool] | None = None,
        bulk_action_id: int | None = None,
        priority: int | None = None,
    ) -> int:
        """Wait for one slot, then take up to ``wanted`` in all while they are free; returns slots held (0 when
        ``should_stop`` said so while waiting).

        ``priority`` defaults to the bulk action's recorded one; a waiter never takes a slot that a live waiter
        of another action ranks above it for.
        """
        if bulk_action_id is not None:
            self.bulk_action_id = bulk_action_id
        if priority is not None:
            self.priority = priority
        elif self._db is not None and self.bulk_action_id is not None:
            with self._db.read_session() as session:
                self.priority = action_priority(session, self.bulk_action_id) or 0
        self.wanted = max(1, min(wanted, self.limit))
        self._sync(force=True)
        while not self._leases:
            acquired, wait = self._try_acquire() if self._may_take() else (False, WAIT_POLL_SECONDS)
            if acquired:
                break
            if should_stop is not None and should_stop():
                return 0
            self._beat_if_due()
            time.sleep(min(max(wait, 0.1), WAIT_POLL_SECONDS if self._db is not None else 5.0))
        while len(self._leases) < self.wanted and self._may_take():
            acquired, _ = self._try_acquire()
            if not acquired:
                break
        self._sync()
        self._renewed_at = time.monotonic()
        return len(self._leases)

    def rebalance(self) -> bool:
        """At a batch boundary: give one slot back if a live waiter of another action outranks this run
        (returns True), or take one more if this run waits for more and may; one query when nobody waits."""
        if self._db is None or self._claim is None:
            return False
        now = datetime.now(UTC)
        with self._db.read_session() as session:
            waiters = live_waiters(session, self.tag, now)
        if not waiters:
            return False
        if self._leases and must_yield_slot(self._claim, waiters, now):
            self._client.release_concurrency_slots_with_lease(self._leases.pop())
            self._sync()
            return True
        if len(self._leases) < self.wanted and may_take_slot(self._claim, waiters, now):
            acquired, _ = self._try_acquire()
            if acquired:
                self._sync()
        return False

    def renew_if_due(self) -> None:
        if time.monotonic() - self._renewed_at < RENEW_EVERY_SECONDS:
            return
        for lease_id in self._leases:
            self._client.renew_concurrency_lease(lease_id, lease_duration=LEASE_SECONDS)
        self._renewed_at = time.monotonic()
        self._beat_if_due(force=True)

    def shrink_to(self, count: int) -> None:
        """Give back slots the action can no longer use (its tail has fewer batches than slots)."""
        self.wanted = min(self.wanted, max(count, 0))
        while len(self._leases) > max(count, 0):
            self._client.release_concurrency_slots_with_lease(self._leases.pop())
        self._sync()

    def release_all(self) -> None:
        try:
            self.shrink_to(0)
        finally:
            try:
                if self._db is not None and self._recorded is not None:
                    with self._db.session() as session:
                        delete_claim(session, self.tag, self._flow_run_id)
            finally:
                self._client.__exit__(None, None, None)

    # --- the run's slot_requests row ---------------------------------------------------------------------

    def _may_take(self) -> bool:
        if self._db is None or self._claim is None:
            return True
        now = datetime.now(UTC)
        with self._db.read_session() as session:
            waiters = live_waiters(session, self.tag, now)
        return may_take_slot(self._claim, waiters, now)

    def _sync(self, force: bool = False) -> None:
        """Write what the run holds and wants when that changed (a new wait starts its age from now)."""
        state = (len(self._leases), self.wanted)
        if self._db is None or (state == self._recorded and not force):
            return
        with self._db.session() as session:
            self._claim = record_claim(
                session,
                self.tag,
                self._flow_run_id,
                bulk_action_id=self.bulk_action_id,
                priority=self.priority,
                wanted=self.wanted,
                held=state[0],
                now=datetime.now(UTC),
            )
        self._recorded, self._beat_at = state, time.monotonic()

    def _beat_if_due(self, force: bool = False) -> None:
        if self._db is None or self._recorded is None:
            return
        if not force and time.monotonic() - self._beat_at < WAITER_HEARTBEAT_SECONDS:
            return
        now = datetime.now(UTC)
        with self._db.session() as session:
            heartbeat(session, self.tag, self._flow_run_id, now)
        self._beat_at = time.monotonic()
        if self._claim is not None:
            self._claim = Claim(
                self._claim.flow_run_id,
                self._claim.bulk_action_id,
                self._claim.priority,
                self._claim.waiting_since,
                now,
                self._claim.order,
            )


def release_slots_of_dead_run(client: SyncPrefectClient, tag: str, dead_flow_run_id: UUID) -> None:
    """Revoke every lease on ``tag`` held by a flow run whose process is known to be gone.

    Prefect's task-run-aware decrement finds leases by holder id, whatever the holder's type.
    """
    client.decrement_v1_concurrency_slots(names=[tag], task_run_id=dead_flow_run_id, occupancy_seconds=1.0)
