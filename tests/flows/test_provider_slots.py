"""Provider slots are leases on the Prefect limit: shared by every holder, never more than the limit."""

from __future__ import annotations

import uuid

from prefect.client.orchestration import get_client

from deployments.provision_limits import provision_limits
from flows.provider_slots import ProviderSlots, release_slots_of_dead_run


def active_slots(tag: str) -> int:
    with get_client(sync_client=True) as client:
        return int(client.read_global_concurrency_limit_by_name(f"tag:{tag}").active_slots)


def test_two_holders_never_hold_more_than_the_limit_together() -> None:
    tag = f"slots-{uuid.uuid4().hex[:8]}"
    provision_limits({tag: 3})
    first, second = ProviderSlots(tag, str(uuid.uuid4())), ProviderSlots(tag, str(uuid.uuid4()))
    try:
        assert first.acquire(2) == 2
        assert second.acquire(5) == 1  # only what is left; never more than the limit together
        assert active_slots(tag) == 3
        first.shrink_to(1)
        assert active_slots(tag) == 2
    finally:
        first.release_all()
        second.release_all()
    assert active_slots(tag) == 0


def test_a_dead_holders_slots_are_given_back() -> None:
    tag = f"slots-{uuid.uuid4().hex[:8]}"
    provision_limits({tag: 2})
    dead_run = str(uuid.uuid4())
    dead = ProviderSlots(tag, dead_run)
    assert dead.acquire(2) == 2  # then its process "dies": nobody releases these leases
    with get_client(sync_client=True) as client:
        release_slots_of_dead_run(client, tag, uuid.UUID(dead_run))
    assert active_slots(tag) == 0
    survivor = ProviderSlots(tag, str(uuid.uuid4()))
    try:
        assert survivor.acquire(2) == 2
    finally:
        survivor.release_all()
