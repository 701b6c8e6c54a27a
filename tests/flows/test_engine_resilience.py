"""The engine's guarantees, with provider calls counted where they land: at the sandbox, over real HTTP.

A poison company becomes one dead job while its batch-mates succeed; the failure threshold decides the end
status; a run killed mid-way resumes from its checkpoints with zero provider calls for completed batches; a
cancelled run ends ``cancelled``.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterId,
    TaskRunFilter,
    TaskRunFilterState,
    TaskRunFilterStateType,
)
from prefect.client.schemas.objects import StateType
from prefect.settings import PREFECT_API_URL
from prefect.states import Cancelling
from sqlalchemy import select, update

from blocks.database import CompanyDatabase
from blocks.embeddings import OpenAICompatibleEmbeddings
from blocks.loading import clear_block_cache, load_database
from core.schema import BulkActionOutcome, BulkActionStatus, Company, OutcomeStatus
from core.text import embedding_text
from deployments.provision_limits import provision_limits
from flows.engine import BulkActionFailedError, BulkActionSummary
from flows.generate_embeddings import generate_embeddings
from sandbox.server import SandboxServer
from tests.helpers import bulk_action, dead_jobs, embedding_rows, latest_bulk_action, seed

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
API_KEY = "sk-sandbox-secret-0123456789"


@pytest.fixture
def sandbox(provider_sandbox: SandboxServer) -> Iterator[SandboxServer]:
    provider_sandbox.reset(config=True)
    yield provider_sandbox
    provider_sandbox.reset(config=True)


@pytest.fixture(scope="module")
def sandbox_providers(provider_sandbox: SandboxServer) -> dict[str, str]:
    """Embedding blocks pointing at the sandbox: a parallel one, and a one-batch-at-a-time one."""
    provision_limits({"sandbox-serial": 1, "sandbox-crash": 1})
    common: dict[str, Any] = {
        "base_url": f"{provider_sandbox.url}/v1",
        "api_key": API_KEY,
        "model": "sandbox-embed",
        "self_hosted": True,  # a made-up model no price list knows: free, as a server of your own is
        "calls_per_batch": 1,  # one provider call per task run: these tests are about per-batch checkpoints
    }
    OpenAICompatibleEmbeddings(**common, retries=1).save("sandbox", overwrite=True)
    OpenAICompatibleEmbeddings(**common, retries=0, concurrency_tag="sandbox-serial").save(
        "sandbox-serial", overwrite=True
    )
    OpenAICompatibleEmbeddings(**common, retries=0, concurrency_tag="sandbox-crash").save(
        "sandbox-crash", overwrite=True
    )
    clear_block_cache()
    return {
        "parallel": "openai-compatible-embeddings/sandbox",
        "serial": "openai-compatible-embeddings/sandbox-serial",
        "crash": "openai-compatible-embeddings/sandbox-crash",
    }


def texts_of(db: CompanyDatabase, ids: list[int]) -> dict[int, str]:
    with db.session() as session:
        return {c.id: embedding_text(c) for c in session.scalars(select(Company).where(Company.id.in_(ids)))}


def calls_for(sandbox: SandboxServer, text: str) -> int:
    """Embedding requests the sandbox accepted whose texts start with ``text`` (the batch's first company)."""
    return sum(
        1
        for r in sandbox.requests(provider="openai")
        if r["endpoint"] == "embeddings" and r["status"] == 200 and r["match_key"].startswith(text[:150])
    )


def wait_until(condition: Callable[[], bool], timeout: float = 120.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_a_poison_company_becomes_a_dead_job_and_its_batch_mates_succeed(
    sandbox: SandboxServer, sandbox_providers: dict[str, str]
) -> None:
    db = load_database("default")
    ids = seed(db, 20, seed_value=1001)
    poison = ids[13]
    with db.session() as session:
        session.execute(update(Company).where(Company.id == poison).values(name="Poison Pill Holdings"))
    sandbox.configure("openai", faults=[{"kind": "5xx", "match": "Poison Pill Holdings", "status": 503}])

    summary = generate_embeddings(company_ids=ids, provider=sandbox_providers["parallel"])

    assert isinstance(summary, BulkActionSummary)
    assert (summary.status, summary.succeeded, summary.failed) == ("completed", 19, 1)
    [dead] = dead_jobs(db, summary.bulk_action_id)
    assert dead.company_id == poison and dead.error_class == "ProviderServerError" and dead.retryable
    assert dead.attempts == 4  # the batch call and its retry, then the company alone and its retry
    assert "503" in dead.error_message and API_KEY not in dead.error_message
    assert embedding_rows(db, ids) == 19
    with db.session() as session:
        outcome = session.get(BulkActionOutcome, (summary.bulk_action_id, poison))
        assert outcome is not None and outcome.status is OutcomeStatus.FAILED


@pytest.mark.parametrize(("threshold", "expected"), [(0.5, "failed"), (1.0, "completed")])
def test_the_failure_threshold_decides_the_end_status(
    sandbox: SandboxServer, sandbox_providers: dict[str, str], threshold: float, expected: str
) -> None:
    db = load_database("default")
    ids = seed(db, 10, seed_value=1100 + int(threshold * 10))
    # every answer garbled: each company fails after its retries (a provider answering 5xx to everything is an
    # outage instead, which the circuit breaker holds: see test_circuit_breaker)
    sandbox.configure("openai", faults=[{"kind": "malformed_json", "rate": 1.0}])

    state = generate_embeddings(
        company_ids=ids, provider=sandbox_providers["serial"], failure_threshold=threshold, return_state=True
    )

    record = latest_bulk_action(db)
    assert record is not None and record.status.value == expected
    assert (record.failed, record.processed) == (10, 10)
    assert len(dead_jobs(db, record.id)) == 10
    if expected == "failed":
        assert state.is_failed()
        with pytest.raises(BulkActionFailedError, match="10 of 10 companies failed"):
            state.result()
        assert "threshold" in (record.status_reason or "")
    else:
        assert state.is_completed()


def test_an_idempotent_rerun_makes_no_provider_call(sandbox: SandboxServer, sandbox_providers: dict[str, str]) -> None:
    db = load_database("default")
    ids = seed(db, 30, seed_value=1200)
    generate_embeddings(company_ids=ids, provider=sandbox_providers["parallel"])
    first_calls = sandbox.stats()["providers"]["openai"]["endpoints"]["embeddings"]["accepted"]
    again = generate_embeddings(company_ids=ids, provider=sandbox_providers["parallel"])
    assert isinstance(again, BulkActionSummary) and again.skipped == 30
    assert first_calls == 3
    assert sandbox.stats()["providers"]["openai"]["endpoints"]["embeddings"]["accepted"] == first_calls
    assert embedding_rows(db, ids) == 30


def _completed_task_batches(flow_run_id: str) -> list[int]:
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[UUID(flow_run_id)])),
            task_run_filter=TaskRunFilter(
                state=TaskRunFilterState(type=TaskRunFilterStateType(any_=[StateType.COMPLETED]))
            ),
        )
    return sorted(int(match[1]) for r in runs if (match := re.search(r"-batch-(\d+)", r.name)))


def _finished_companies(db: CompanyDatabase, bulk_action_id: int) -> int:
    with db.read_session() as session:
        statuses = session.scalars(
            select(BulkActionOutcome.status).where(BulkActionOutcome.bulk_action_id == bulk_action_id)
        )
        return sum(status is not OutcomeStatus.PENDING for status in statuses)


def test_a_crash_mid_run_resumes_without_paying_again_for_completed_batches(
    sandbox: SandboxServer, sandbox_providers: dict[str, str], session_dir: Any
) -> None:
    db = load_database("default")
    ids = seed(db, 80, seed_value=1300)  # 8 batches of 10, one at a time
    sandbox.configure("openai", latency_ms=400)
    env = {
        **os.environ,
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
        "PYTHONPATH": REPO_ROOT,
        "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "",
    }
    env.pop("PREFECT_FLOWS_HEARTBEAT_FREQUENCY")
    code = (
        "from flows.generate_embeddings import generate_embeddings\n"
        f"generate_embeddings(company_ids={ids!r}, provider={sandbox_providers['crash']!r})\n"
    )
    before = latest_bulk_action(db)
    worker = subprocess.Popen([sys.executable, "-c", code], env=env, cwd=REPO_ROOT, start_new_session=True)
    try:
        wait_until(
            lambda: (r := latest_bulk_action(db)) is not None and r.id != (before.id if before else None),
            what="the bulk action record",
        )
        record = latest_bulk_action(db)
        assert record is not None and record.flow_run_id
        # timed on the company database: the server records task runs from events in batches, seconds late
        wait_until(lambda: _finished_companies(db, record.id) >= 30, what="three batches' outcomes")
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
    # batches 1 and 2 finished a whole batch (400 ms) before the kill: their task runs completed
    wait_until(lambda: len(_completed_task_batches(record.flow_run_id)) >= 2, what="the server's record")  # type: ignore[arg-type]
    completed = _completed_task_batches(record.flow_run_id)  # type: ignore[arg-type]
    assert 2 <= len(completed) < 8, completed
    assert bulk_action(db, record.id).status is BulkActionStatus.RUNNING  # the crash left it mid-flight

    # The killed process still holds the only slot (limit 1) on a 300-s lease: the rerun finishing at all
    # shows the takeover gave it back (the test harness runs no repossessor to expire it).
    texts = texts_of(db, ids)
    first_text = {b: texts[ids[b * 10]] for b in range(8)}
    calls_before = {b: calls_for(sandbox, first_text[b]) for b in range(8)}

    refused = generate_embeddings(bulk_action_id=record.id, provider=sandbox_providers["crash"], return_state=True)
    assert refused.is_failed() and "takeover" in str(refused.message)

    # provider omitted: a rerun resumes on the provider the action started with (its checkpoints are keyed on it)
    resumed = generate_embeddings(bulk_action_id=record.id, takeover=True)
    assert isinstance(resumed, BulkActionSummary)
    assert resumed.bulk_action_id == record.id and resumed.status == "completed"
    assert resumed.succeeded + resumed.skipped == 80 and resumed.failed == 0
    # Prefect records a task run Completed before it commits the run's checkpoint (the transaction closes after
    # the state is set), so the one batch in flight (limit 1) may have died in between.  Such a batch reruns
    # without a provider call: its embeddings were stored before it returned (skipped, and the loop below).
    assert resumed.batches_from_checkpoint >= len(completed) - 1
    assert resumed.batches_from_checkpoint + resumed.skipped // 10 >= len(completed)
    for b in completed:
        assert calls_for(sandbox, first_text[b]) == calls_before[b], f"batch {b} was paid for twice"
    assert embedding_rows(db, ids) == 80
    with get_client(sync_client=True) as client:
        old = client.read_flow_run(UUID(record.flow_run_id))  # type: ignore[arg-type]
    assert old.state is not None and old.state.type is StateType.CRASHED
    with get_client(sync_client=True) as client:
        assert client.read_global_concurrency_limit_by_name("tag:sandbox-crash").active_slots == 0


def test_a_rerun_keeps_the_provider_the_action_started_with(
    sandbox: SandboxServer, sandbox_providers: dict[str, str]
) -> None:
    db = load_database("default")
    ids = seed(db, 30, seed_value=1300)
    first = generate_embeddings(company_ids=ids, provider=sandbox_providers["parallel"])
    assert isinstance(first, BulkActionSummary) and first.provider_calls == 3

    other = generate_embeddings(
        bulk_action_id=first.bulk_action_id, provider=sandbox_providers["serial"], return_state=True
    )
    assert other.is_failed() and "omit provider to resume it" in str(other.message)

    calls_before = sandbox.stats()["providers"]["openai"]["endpoints"]["embeddings"]["accepted"]
    rerun = generate_embeddings(bulk_action_id=first.bulk_action_id)  # the flow's default provider
    assert isinstance(rerun, BulkActionSummary) and rerun.bulk_action_id == first.bulk_action_id
    assert (rerun.batches_from_checkpoint, rerun.provider_calls) == (3, 0)
    assert sandbox.stats()["providers"]["openai"]["endpoints"]["embeddings"]["accepted"] == calls_before


def test_a_cancelled_run_ends_cancelled(sandbox: SandboxServer, sandbox_providers: dict[str, str]) -> None:
    db = load_database("default")
    ids = seed(db, 100, seed_value=1400)
    sandbox.configure("openai", latency_ms=300)
    before = latest_bulk_action(db)
    outcome: dict[str, Any] = {}

    def run() -> None:
        outcome["state"] = generate_embeddings(
            company_ids=ids, provider=sandbox_providers["serial"], progress_every=1, return_state=True
        )

    thread = threading.Thread(target=run)
    thread.start()
    try:

        def started() -> bool:
            record = latest_bulk_action(db)
            return record is not None and record.id != (before.id if before else None) and record.processed > 0

        wait_until(started, what="the first batch")
        record = latest_bulk_action(db)
        assert record is not None and record.status is BulkActionStatus.RUNNING
        with get_client(sync_client=True) as client:
            client.set_flow_run_state(UUID(record.flow_run_id), Cancelling(), force=True)  # type: ignore[arg-type]
    finally:
        thread.join(timeout=120)
    assert not thread.is_alive()
    final = bulk_action(db, record.id)
    assert final.status is BulkActionStatus.CANCELLED
    assert 0 < final.processed < 100
    assert outcome["state"].is_cancelled()
