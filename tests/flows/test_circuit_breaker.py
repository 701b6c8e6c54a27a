"""The provider circuit breaker in real actions: an outage at the sandbox, on the harness server.

A provider that answers 503 to everything for a few seconds, in the middle of an action: the breaker opens, no
request reaches the provider while it is open except the half-open probes, no company fails or becomes a dead
job, and the action completes once the provider is back.  An outage longer than ``pause_after_seconds`` pauses
the action (reason: the provider is unavailable), and a rerun after the outage finishes it.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactCollectionFilter, ArtifactCollectionFilterKey
from sqlalchemy import select

from blocks.loading import clear_block_cache, load_database
from blocks.operations import BreakerSettings, OperationsPolicy
from core import circuit, events
from core.operations_tables import CircuitState, CircuitTransition
from core.schema import BulkActionOutcome, BulkActionStatus, OutcomeStatus, utcnow
from flows.action_end import artifact_key
from flows.engine import BulkActionSummary
from flows.generate_embeddings import generate_embeddings
from sandbox.server import SandboxServer
from tasks.circuit_guard import forget_guards
from tests.helpers import (
    bulk_action,
    dead_jobs,
    embedding_rows,
    latest_bulk_action,
    read_events,
    sandbox_embeddings,
    seed,
)

TAG = "breaker-test"
PROVIDER = "openai-compatible-embeddings/breaker"
COOLDOWN = 2.0


@pytest.fixture
def sandbox(provider_sandbox: SandboxServer) -> Iterator[SandboxServer]:
    provider_sandbox.reset(config=True)
    provider_sandbox.configure("openai", latency_ms=30)
    yield provider_sandbox
    provider_sandbox.reset(config=True)


def use_policy(pause_after_seconds: float) -> None:
    settings = BreakerSettings(
        consecutive_failures=3, cooldown_seconds=COOLDOWN, probes=1, pause_after_seconds=pause_after_seconds
    )
    OperationsPolicy(breaker_by_tag={TAG: settings}).save("default", overwrite=True)
    clear_block_cache()
    forget_guards()


@pytest.fixture
def breaker_provider(sandbox: SandboxServer) -> Iterator[str]:
    sandbox_embeddings(sandbox.url, TAG, limit=3, name="breaker")
    yield PROVIDER
    engine = load_database("default").get_engine()
    circuit.reset(engine, TAG, utcnow())  # the next test meets a closed breaker whatever this one left
    _delete_policy()
    clear_block_cache()
    forget_guards()


def _delete_policy() -> None:
    with get_client(sync_client=True) as client:
        document = client.read_block_document_by_name("default", OperationsPolicy.get_block_type_slug())
        client.delete_block_document(document.id)


def run_in_thread(fn: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    """Run a flow in a thread of its own (with this thread's Prefect context), keeping its result."""
    out: list[Any] = []
    context = contextvars.copy_context()
    thread = threading.Thread(target=lambda: out.append(context.run(fn)), daemon=True)
    thread.start()
    return thread, out


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _description(key: str) -> str:
    with get_client(sync_client=True) as client:
        latest = client.read_latest_artifacts(
            artifact_filter=ArtifactCollectionFilter(key=ArtifactCollectionFilterKey(any_=[key]))
        )
    return str(latest[0].description or "") if latest else ""


def embedding_requests(sandbox: SandboxServer) -> list[dict[str, Any]]:
    return [r for r in sandbox.requests(provider="openai") if r["endpoint"] == "embeddings"]


def open_spells(history: list[CircuitTransition]) -> list[tuple[str, datetime, datetime | None]]:
    """(state, from, to) for every open and half-open spell of the breaker, in order."""
    spells = []
    for current, following in zip(history, [*history[1:], None], strict=True):
        if current.to_state in (CircuitState.OPEN, CircuitState.HALF_OPEN):
            spells.append((current.to_state, current.at, following.at if following is not None else None))
    return spells


def test_an_outage_mid_action_opens_the_breaker_and_costs_no_company(
    sandbox: SandboxServer, breaker_provider: str
) -> None:
    use_policy(pause_after_seconds=120)
    db = load_database("default")
    engine = db.get_engine()
    ids = seed(db, 200, seed_value=16001)
    since = utcnow()

    thread, out = run_in_thread(lambda: generate_embeddings(company_ids=ids, provider=breaker_provider))
    wait_until(lambda: len(embedding_requests(sandbox)) >= 4, 60, "the action's first calls")
    outage = sandbox.outage("openai", seconds=5.0)
    # the user sees it: the action's progress artifact says its provider's circuit is open and batches wait
    running = latest_bulk_action(db)
    assert running is not None
    key = artifact_key("generate_embeddings", running.id, "progress")
    wait_until(lambda: "circuit open" in _description(key), 30, "the progress artifact to show the open circuit")
    thread.join(timeout=180)
    assert not thread.is_alive(), "the action did not finish after the outage"

    [summary] = out
    assert isinstance(summary, BulkActionSummary)
    assert (summary.status, summary.succeeded, summary.failed) == ("completed", 200, 0)
    assert dead_jobs(db, summary.bulk_action_id) == []
    assert embedding_rows(db, ids) == 200

    history = circuit.transitions(engine, TAG, since=since)
    moves = [(t.from_state, t.to_state) for t in history]
    assert moves[0] == (CircuitState.CLOSED, CircuitState.OPEN)
    assert moves[-1] == (CircuitState.HALF_OPEN, CircuitState.CLOSED)
    assert circuit.read(engine, TAG).state == CircuitState.CLOSED

    failed = [r for r in embedding_requests(sandbox) if r["fault"] == "outage"]
    assert failed and all(outage["start"] <= r["time"] < outage["end"] for r in failed)
    for state, begin, end in open_spells(history):
        assert end is not None
        inside = [r for r in embedding_requests(sandbox) if begin.timestamp() + 0.1 < r["time"] < end.timestamp()]
        if state == CircuitState.OPEN:
            assert inside == [], f"{len(inside)} calls reached the provider while its breaker was open"
        else:
            assert len(inside) <= 1, "more calls than the one probe went out half-open"
    # the first success after the provider came back closed the breaker within a cool-down (and a poll)
    closed_at = history[-1].at.timestamp()
    assert closed_at - outage["end"] <= COOLDOWN + 2.0
    # every change of state was emitted as an event of the provider's circuit: one "opened" for the outage, a
    # "reopened" for each failed probe
    reopened = moves.count((CircuitState.HALF_OPEN, CircuitState.OPEN))
    wanted = {events.CIRCUIT_OPENED, events.CIRCUIT_HALF_OPENED, events.CIRCUIT_CLOSED}
    emitted = read_events(f"bulkai.provider-circuit.{TAG}", wanted | ({events.CIRCUIT_REOPENED} if reopened else set()))
    assert len(emitted[events.CIRCUIT_OPENED]) == moves.count((CircuitState.CLOSED, CircuitState.OPEN)) == 1
    assert len(emitted.get(events.CIRCUIT_REOPENED, [])) == reopened
    assert emitted[events.CIRCUIT_CLOSED][0]["payload"]["tag"] == TAG


def test_a_long_outage_pauses_the_action_and_a_rerun_finishes_it(sandbox: SandboxServer, breaker_provider: str) -> None:
    use_policy(pause_after_seconds=3.0)
    db = load_database("default")
    ids = seed(db, 60, seed_value=16002)
    sandbox.outage("openai", seconds=600.0)

    paused = generate_embeddings(company_ids=ids, provider=breaker_provider)

    record = bulk_action(db, _latest_id(db))
    assert record.status is BulkActionStatus.PAUSED, paused
    assert "unavailable" in (record.status_reason or "") and TAG in (record.status_reason or "")
    assert dead_jobs(db, record.id) == [] and record.failed == 0
    with db.session() as session:
        statuses = {o.status for o in record_outcomes(session, record.id)}
    assert statuses == {OutcomeStatus.PENDING}

    sandbox.reset()  # the provider is back
    summary = generate_embeddings(bulk_action_id=record.id, provider=breaker_provider)
    assert isinstance(summary, BulkActionSummary)
    assert (summary.status, summary.succeeded, summary.failed) == ("completed", 60, 0)
    assert dead_jobs(db, record.id) == []


def _latest_id(db: Any) -> int:
    latest = latest_bulk_action(db)
    assert latest is not None
    return latest.id


def record_outcomes(session: Any, bulk_action_id: int) -> list[Any]:
    return list(session.scalars(select(BulkActionOutcome).where(BulkActionOutcome.bulk_action_id == bulk_action_id)))
