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
"""

from __future__ import annotations

import time
from uuid import UUID

import httpx
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.objects import ConcurrencyLeaseHolder
from prefect.exceptions import ObjectNotFound

from core.errors import MissingProviderLimitError

LEASE_SECONDS = 300.0
RENEW_EVERY_SECONDS = 60.0


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
    """Up to ``wanted`` slots of one provider's limit, each a lease held by ``holder_flow_run_id``."""

    def __init__(self, tag: str, holder_flow_run_id: str) -> None:
        self.tag = tag
        self._holder = ConcurrencyLeaseHolder(type="flow_run", id=UUID(holder_flow_run_id))
        self._client = get_client(sync_client=True)
        self._client.__enter__()
        self._leases: list[UUID] = []
        self._renewed_at = time.monotonic()
        self.limit = provider_limit(self._client, tag)

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

    def acquire(self, wanted: int, *, should_stop: object = None) -> int:
        """Wait for one slot, then take up to ``wanted`` in all while they are free; returns slots held."""
        wanted = max(1, min(wanted, self.limit))
        while not self._leases:
            acquired, wait = self._try_acquire()
            if not acquired:
                if callable(should_stop) and should_stop():
                    return 0
                time.sleep(min(max(wait, 0.1), 5.0))
        while len(self._leases) < wanted:
            acquired, _ = self._try_acquire()
            if not acquired:
                break
        self._renewed_at = time.monotonic()
        return len(self._leases)

    def renew_if_due(self) -> None:
        if time.monotonic() - self._renewed_at < RENEW_EVERY_SECONDS:
            return
        for lease_id in self._leases:
            self._client.renew_concurrency_lease(lease_id, lease_duration=LEASE_SECONDS)
        self._renewed_at = time.monotonic()

    def shrink_to(self, count: int) -> None:
        """Give back slots the action can no longer use (its tail has fewer batches than slots)."""
        while len(self._leases) > max(count, 0):
            self._client.release_concurrency_slots_with_lease(self._leases.pop())

    def release_all(self) -> None:
        try:
            self.shrink_to(0)
        finally:
            self._client.__exit__(None, None, None)


def release_slots_of_dead_run(client: SyncPrefectClient, tag: str, dead_flow_run_id: UUID) -> None:
    """Revoke every lease on ``tag`` held by a flow run whose process is known to be gone.

    Prefect's task-run-aware decrement finds leases by holder id, whatever the holder's type.
    """
    client.decrement_v1_concurrency_slots(names=[tag], task_run_id=dead_flow_run_id, occupancy_seconds=1.0)
