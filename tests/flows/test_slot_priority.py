"""Two real actions competing for one provider's slots: the higher priority gets them first.

A priority-0 action holds both slots of a provider (limit 2, the sandbox answering each batch in 300 ms); a
priority-9 action on the same provider starts meanwhile.  The low one gives its slots back at its next batch
boundaries and starts no batch until the high one has started all of its own; then it takes them again and
completes.  Batch start times come from the Prefect API, the high action's wait from its ``slot_requests`` row.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from sqlalchemy import select

from blocks.database import CompanyDatabase
from blocks.loading import load_database
from core.operations_tables import SlotRequest
from core.schema import BulkAction
from flows.engine import BulkActionSummary
from flows.generate_embeddings import generate_embeddings
from sandbox.server import SandboxServer
from tests.helpers import sandbox_embeddings, seed

LIMIT = 2


@pytest.fixture
def contested(provider_sandbox: SandboxServer) -> Iterator[tuple[str, str]]:
    """A sandbox embedding block on a tag of its own with a limit of 2; (block, tag)."""
    tag = f"prio-{uuid.uuid4().hex[:8]}"
    reference = sandbox_embeddings(provider_sandbox.url, tag, limit=LIMIT, retries=0)
    provider_sandbox.reset(config=True)
    provider_sandbox.configure("openai", latency_ms=300)
    yield reference, tag
    provider_sandbox.reset(config=True)


def wait_until(condition: Callable[[], Any], timeout: float = 120.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)
    return value


def requests_on(db: CompanyDatabase, tag: str) -> list[SlotRequest]:
    with db.read_session() as session:
        rows = list(session.scalars(select(SlotRequest).where(SlotRequest.tag == tag)))
        session.expunge_all()
        return rows


def action_of(db: CompanyDatabase, created_by: str) -> BulkAction | None:
    with db.read_session() as session:
        record = session.scalars(select(BulkAction).where(BulkAction.created_by == created_by)).first()
        if record is not None:
            session.expunge(record)
        return record


def batch_starts(flow_run_id: str, expected: int) -> list[datetime] | None:
    """When each of the flow run's batch task runs started (Prefect API), once all ``expected`` are recorded."""
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[UUID(flow_run_id)])))
    starts = sorted(r.start_time for r in runs if "-batch-" in r.name and r.start_time is not None)
    return starts if len(starts) == expected else None


def test_a_high_priority_action_gets_the_slots_before_the_low_one_starts_more_batches(
    contested: tuple[str, str],
) -> None:
    provider, tag = contested
    db = load_database("default")
    low_ids, high_ids = seed(db, 160, seed_value=4101), seed(db, 40, seed_value=4102)
    stamp = uuid.uuid4().hex[:6]
    outcome: dict[str, Any] = {}

    def run(name: str, ids: list[int], priority: int) -> None:
        outcome[name] = generate_embeddings(
            company_ids=ids, provider=provider, priority=priority, created_by=f"{name}-{stamp}"
        )

    low = threading.Thread(target=run, args=("low", low_ids, 0))
    low.start()
    high = threading.Thread(target=run, args=("high", high_ids, 9))
    try:
        wait_until(lambda: any(r.held == LIMIT for r in requests_on(db, tag)), what="the low action to hold both slots")
        low_record = wait_until(lambda: action_of(db, f"low-{stamp}"), what="the low action")
        high.start()
        high_record = wait_until(lambda: action_of(db, f"high-{stamp}"), what="the high action")
        waiting = wait_until(
            lambda: [r for r in requests_on(db, tag) if r.flow_run_id == high_record.flow_run_id],
            what="the high action's slot request",
        )
        began_waiting = waiting[0].created_at
    finally:
        low.join(timeout=180)
        high.join(timeout=180)
    assert not low.is_alive() and not high.is_alive()
    for name in ("low", "high"):
        assert isinstance(outcome[name], BulkActionSummary) and outcome[name].status == "completed", outcome[name]

    # the server records task runs from events, in batches, a little late
    low_starts = wait_until(lambda: batch_starts(low_record.flow_run_id, 16), what="the low batches' records")
    high_starts = wait_until(lambda: batch_starts(high_record.flow_run_id, 4), what="the high batches' records")
    high_all_started = high_starts[-1]
    # a low batch decided just before the high request appeared may start a few ms after it: only those
    inversions = [
        s for s in low_starts if began_waiting.timestamp() + 0.05 < s.timestamp() < high_all_started.timestamp()
    ]
    assert inversions == [], (began_waiting, high_starts, low_starts)
    assert sum(s < began_waiting for s in low_starts) < 16  # the high one really started mid-way
    assert requests_on(db, tag) == []  # each run deleted its request at the end
