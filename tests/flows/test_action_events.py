"""The Prefect events a bulk action emits, read back from the server's event store (``core.events``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prefect.client.orchestration import get_client

from blocks.loading import clear_block_cache, load_database
from blocks.operations import AlertThresholds, OperationsPolicy
from core import events
from flows.engine import BulkActionSummary
from flows.generate_embeddings import generate_embeddings
from sandbox.server import SandboxServer
from tasks.circuit_guard import forget_guards
from tests.helpers import bulk_action, read_events, sandbox_embeddings, seed


@pytest.fixture
def strict_alerts() -> Iterator[None]:
    OperationsPolicy(alerts=AlertThresholds(failure_ratio=0.1, failure_min_processed=5)).save("default", overwrite=True)
    clear_block_cache()
    forget_guards()
    yield
    with get_client(sync_client=True) as client:
        document = client.read_block_document_by_name("default", OperationsPolicy.get_block_type_slug())
        client.delete_block_document(document.id)
    clear_block_cache()


def test_an_action_emits_started_progress_and_finished_with_its_counts() -> None:
    db = load_database("default")
    ids = seed(db, 25, seed_value=16101)

    summary = generate_embeddings(company_ids=ids, created_by="events-test", priority=3)

    assert isinstance(summary, BulkActionSummary)
    found = read_events(
        f"bulkai.bulk-action.{summary.bulk_action_id}",
        {events.STARTED, events.PROGRESS, events.FINISHED},
        flow_run_id=bulk_action(db, summary.bulk_action_id).flow_run_id,
    )
    [started] = found[events.STARTED]
    assert started["payload"]["total"] == 25 and started["payload"]["action"] == "generate_embeddings"
    assert started["payload"]["priority"] == 3 and started["payload"]["created_by"] == "events-test"
    assert any(r["prefect.resource.role"] == "flow-run" for r in started["related"])
    last = max(found[events.PROGRESS], key=lambda e: e["payload"]["processed"])
    assert last["payload"]["processed"] == 25 and last["payload"]["percent"] == 100.0
    [finished] = found[events.FINISHED]
    assert (finished["payload"]["status"], finished["payload"]["succeeded"], finished["payload"]["failed"]) == (
        "completed",
        25,
        0,
    )
    assert events.FAILURE_RATIO_EXCEEDED not in found


def test_a_failure_ratio_over_the_threshold_is_emitted_once(
    provider_sandbox: SandboxServer, strict_alerts: None
) -> None:
    provider_sandbox.reset(config=True)
    provider = sandbox_embeddings(provider_sandbox.url, "events-test", limit=2, retries=0)
    provider_sandbox.configure("openai", faults=[{"kind": "malformed_json", "rate": 1.0}])
    db = load_database("default")
    ids = seed(db, 40, seed_value=16102)
    try:
        summary = generate_embeddings(company_ids=ids, provider=provider, failure_threshold=1.0)
    finally:
        provider_sandbox.reset(config=True)

    assert isinstance(summary, BulkActionSummary) and summary.failed == 40
    found = read_events(
        f"bulkai.bulk-action.{summary.bulk_action_id}", {events.FAILURE_RATIO_EXCEEDED, events.FINISHED}
    )
    [crossed] = found[events.FAILURE_RATIO_EXCEEDED]
    assert crossed["payload"]["threshold"] == 0.1 and crossed["payload"]["failure_ratio"] == 1.0
    assert crossed["payload"]["processed"] >= 5
