"""Resume after a crash: 200 batches, at most 4 in flight, the worker killed at about 50 %.

Provider calls are counted at the sandbox, per batch (the first company's text starts each request):
``resume_provider_calls_for_completed`` are calls on the rerun for batches whose task run had completed before
the kill; ``resume_recomputed_fraction`` is the share of all batches that were paid for twice.

The kill is timed on the company database (outcomes are written as each batch finishes); which task runs had
completed is read from the Prefect server once its view has settled, because the server records task runs
from events in batches (``deployments/server_settings.py``).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from uuid import UUID

from bench.environment import seed

BATCHES = 200
IN_FLIGHT = 4
REPO_ROOT = Path(__file__).resolve().parent.parent


def _completed_batches(flow_run_id: str) -> set[int]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterId,
        TaskRunFilter,
        TaskRunFilterState,
        TaskRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[UUID(flow_run_id)])),
            task_run_filter=TaskRunFilter(
                state=TaskRunFilterState(type=TaskRunFilterStateType(any_=[StateType.COMPLETED]))
            ),
            limit=BATCHES,
        )
    return {int(match[1]) for r in runs if (match := re.search(r"-batch-(\d+)", r.name))}


def _settled_completed_batches(flow_run_id: str, timeout: float = 60.0) -> set[int]:
    """The completed batches the server knows of, once two reads a recorder flush apart agree."""
    from deployments.server_settings import recorder_flush_seconds

    deadline = time.monotonic() + timeout
    seen = _completed_batches(flow_run_id)
    while time.monotonic() < deadline:
        time.sleep(recorder_flush_seconds() + 0.5)  # a full flush interval: anything sent has been written
        now = _completed_batches(flow_run_id)
        if now == seen:
            return now
        seen = now
    raise RuntimeError("the server's record of the killed run did not settle")


def _finished_companies(bulk_action_id: int) -> int:
    from sqlalchemy import func, select

    from blocks.loading import load_database
    from core.schema import BulkActionOutcome, OutcomeStatus

    with load_database("default").read_session() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(BulkActionOutcome)
                .where(
                    BulkActionOutcome.bulk_action_id == bulk_action_id,
                    BulkActionOutcome.status != OutcomeStatus.PENDING,
                )
            )
            or 0
        )


def run() -> dict[str, float]:
    from prefect.settings import PREFECT_API_URL
    from sqlalchemy import select

    from blocks.embeddings import OpenAICompatibleEmbeddings
    from blocks.loading import load_database
    from core.schema import BulkAction, Company
    from core.text import embedding_text
    from deployments.provision_limits import provision_limits
    from flows.engine import BulkActionSummary
    from flows.generate_embeddings import generate_embeddings
    from sandbox.server import SandboxServer

    db = load_database("default")
    ids = seed(BATCHES * 10, seed_value=9003)
    with db.session() as session:
        texts = {c.id: embedding_text(c) for c in session.scalars(select(Company).where(Company.id.in_(ids)))}
    first_text = [texts[ids[b * 10]][:150] for b in range(BATCHES)]

    with SandboxServer(port=0, config={"openai": {"latency_ms": 40}}) as sandbox:
        OpenAICompatibleEmbeddings(
            base_url=f"{sandbox.url}/v1",
            api_key="bench",
            model="sandbox-embed",
            self_hosted=True,
            concurrency_tag="bench-resume",
        ).save("bench-resume", overwrite=True)
        provision_limits({"bench-resume": IN_FLIGHT})
        provider = "openai-compatible-embeddings/bench-resume"

        def calls_per_batch() -> list[int]:
            counts = [0] * BATCHES
            index = {text: b for b, text in enumerate(first_text)}
            for request in sandbox.requests(provider="openai"):
                if request["endpoint"] == "embeddings" and request["status"] == 200:
                    b = index.get(request["match_key"][:150])
                    if b is not None:
                        counts[b] += 1
            return counts

        code = (
            "from flows.generate_embeddings import generate_embeddings\n"
            f"generate_embeddings(company_ids={ids!r}, provider={provider!r}, created_by='bench')\n"
        )
        env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value()), "PYTHONPATH": str(REPO_ROOT)}
        with db.session() as session:
            before = session.scalar(select(BulkAction.id).order_by(BulkAction.id.desc()).limit(1))
        worker = subprocess.Popen([sys.executable, "-c", code], env=env, cwd=REPO_ROOT, start_new_session=True)
        flow_run_id = ""
        bulk_action_id = 0
        try:
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                with db.session() as session:
                    record = session.scalars(select(BulkAction).order_by(BulkAction.id.desc()).limit(1)).first()
                    if record is not None and record.id != before and record.flow_run_id:
                        flow_run_id, bulk_action_id = record.flow_run_id, record.id
                if bulk_action_id and _finished_companies(bulk_action_id) >= BATCHES * 10 // 2:
                    break
                time.sleep(0.1)
            else:
                raise RuntimeError("the worker did not reach 50 % in time")
        finally:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
        completed = _settled_completed_batches(flow_run_id)
        before_calls = calls_per_batch()

        summary = generate_embeddings(bulk_action_id=bulk_action_id, provider=provider, takeover=True)
        assert isinstance(summary, BulkActionSummary) and summary.failed == 0, summary
        after_calls = calls_per_batch()

    repeated_for_completed = sum(after_calls[b] - before_calls[b] for b in completed)
    paid_twice = sum(1 for b in range(BATCHES) if before_calls[b] > 0 and after_calls[b] > before_calls[b])
    return {
        "resume_recomputed_fraction": paid_twice / BATCHES,
        "resume_provider_calls_for_completed": float(repeated_for_completed),
        "resume_completed_at_crash": float(len(completed)),
        "resume_batches_from_checkpoint": float(summary.batches_from_checkpoint),
    }
