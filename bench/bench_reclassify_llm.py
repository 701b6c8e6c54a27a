"""Benchmark: LLM reclassify on the sandbox's Anthropic Message Batches (#14).

* ``reclassify_llm_requests_per_company``: batch requests the provider received (the sum of its batches'
  request counts, as its own list endpoint reports them) ÷ the companies reclassified, over 1,000 companies,
  including a crash and rerun (target 1.0).
* ``reclassify_llm_resubmitted_after_crash``: batches submitted twice when the flow's process is killed
  (SIGKILL) while polling, after every sub-batch was submitted, and the action is rerun (target 0).
* ``reclassify_llm_staged_per_second``: results staged and post-processed per second for 10,000 results: a
  flow submits 100 sub-batches and dies (a failpoint) before staging anything; once the batches have ended the
  phase is timed alone, from the first poll to the last chunk applied with history (target >= 1,000).

Standalone: ``python -m bench reclassify_llm``.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

logger = logging.getLogger(__name__)

TAG = "bench-anthropic"
PROVIDER = "anthropic-llm/bench"
CRASH_COMPANIES = 1_000
STAGE_COMPANIES = 10_000


def run() -> dict[str, float]:
    from sandbox.server import SandboxServer

    with SandboxServer(port=0, config={"anthropic": {"job_duration_s": 4.0}}) as sandbox:
        _block(sandbox.url)
        results = _crash_during_polling(sandbox)
        sandbox.reset()
        results.update(_staging_speed(sandbox))
        return results


def _block(url: str) -> None:
    from pydantic import SecretStr

    from blocks.llm import AnthropicLLM
    from blocks.loading import clear_block_cache
    from deployments.provision_limits import provision_limits

    provision_limits({TAG: 2})
    AnthropicLLM(
        api_key=SecretStr("fake-anthropic-bench"), base_url=url, model="claude-haiku-4-5", concurrency_tag=TAG
    ).save("bench", overwrite=True)
    clear_block_cache()


def _call(ids_expr: str) -> str:
    return f"reclassify(selection={ids_expr}, mode='llm', provider={PROVIDER!r}, poll_seconds=0.5, max_companies=20000)"


def _crash_during_polling(sandbox: Any) -> dict[str, float]:
    from bench.environment import seed
    from bench.subprocess_flow import run_flow_process
    from flows.reclassify import reclassify

    ids = seed(CRASH_COMPANIES, seed_value=14101)
    marker = _mark(ids, "rl")
    sub_batches = -(-CRASH_COMPANIES // 100)
    bulk: dict[str, int] = {}

    def all_submitted() -> bool:
        found = _submitted(marker)
        if found is not None and found[1] >= sub_batches:
            bulk["id"] = found[0]
            return True  # every sub-batch is in progress: the flow is polling; kill it
        return False

    killed = run_flow_process(
        "from flows.reclassify import reclassify",
        _call(f"{{'filter': {{'name_contains': {marker!r}}}}}"),
        name="reclassify-llm-crash",
        on_poll=all_submitted,
    )
    if killed.result is not None or "id" not in bulk:
        raise RuntimeError("the reclassify finished before it could be killed while polling")
    created_before = _created(sandbox)
    summary: Any = reclassify(bulk_action_id=bulk["id"], takeover=True)
    if summary.succeeded != CRASH_COMPANIES:
        raise RuntimeError(f"the rerun did not reclassify every company: {summary}")
    created = _created(sandbox)
    requests = _provider_requests(sandbox.url)
    logger.warning(
        "crash while polling: %d sub-batches before the kill, %d after the rerun; %d requests for %d companies",
        created_before,
        created,
        requests,
        CRASH_COMPANIES,
    )
    return {
        "reclassify_llm_requests_per_company": requests / CRASH_COMPANIES,
        "reclassify_llm_resubmitted_after_crash": float(created - sub_batches),
    }


def _staging_speed(sandbox: Any) -> dict[str, float]:
    from bench.environment import seed
    from bench.subprocess_flow import run_flow_process
    from blocks.llm import AnthropicLLM
    from blocks.loading import load_database
    from core.failpoints import ENV, EXIT_CODE
    from core.reclassify_llm import LLMOptions
    from tasks.message_batches import MessageBatchJob
    from tasks.metering import Meter

    ids = seed(STAGE_COMPANIES, seed_value=14102)
    marker = _mark(ids, "rs")
    os.environ[ENV] = "reclassify.staging"
    try:
        died = run_flow_process(
            "from flows.reclassify import reclassify",
            _call(f"{{'filter': {{'name_contains': {marker!r}}}}}"),
            name="reclassify-llm-stage",
            expect_exit=EXIT_CODE,
        )
    finally:
        del os.environ[ENV]
    found = _submitted(marker)
    if died.result is not None or found is None or found[1] != STAGE_COMPANIES // 100:
        raise RuntimeError(f"expected the flow to die after submitting every sub-batch: {found}")
    bulk_action_id = found[0]
    time.sleep(4.5)  # the sandbox's batches take 4 s: wait for the provider's clock, not for our code
    db = load_database("default")
    block = AnthropicLLM.load("bench")
    job = MessageBatchJob(
        database=db,
        bulk_action_id=bulk_action_id,
        client=block.get_batches_client(),
        options=LLMOptions.of({"mode": "llm"}, block.model),
        meter=Meter.for_batch(db, bulk_action_id, "reclassify"),
    )
    started = time.perf_counter()
    staged = job.poll_and_stage()
    applied = job.apply_staged()
    seconds = time.perf_counter() - started
    if staged.staged != STAGE_COMPANIES or applied.applied != STAGE_COMPANIES:
        raise RuntimeError(f"staged {staged.staged} and applied {applied.applied} of {STAGE_COMPANIES}")
    logger.warning("staged and applied %d results in %.2f s", STAGE_COMPANIES, seconds)
    return {"reclassify_llm_staged_per_second": STAGE_COMPANIES / seconds}


def _mark(ids: list[int], prefix: str) -> str:
    from sqlalchemy import update

    from blocks.loading import load_database
    from core.schema import Company

    marker = f"{prefix}{int(time.time())}"
    with load_database("default").session() as session:
        for start in range(0, len(ids), 900):
            part = ids[start : start + 900]
            session.execute(update(Company).where(Company.id.in_(part)).values(name=Company.name + f" {marker}"))
    return marker


def _submitted(marker: str) -> tuple[int, int] | None:
    """The newest reclassify action and how many of its sub-batches have a recorded batch id."""
    from sqlalchemy import func, select

    from blocks.loading import load_database
    from core.message_batch_tables import MessageBatch
    from core.schema import BulkAction

    with load_database("default").read_session() as session:
        action = session.scalar(
            select(BulkAction.id).where(BulkAction.action == "reclassify").order_by(BulkAction.id.desc()).limit(1)
        )
        if action is None:
            return None
        recorded = session.scalar(
            select(func.count())
            .select_from(MessageBatch)
            .where(MessageBatch.bulk_action_id == action, MessageBatch.provider_batch_id.is_not(None))
        )
    return int(action), int(recorded or 0)


def _created(sandbox: Any) -> int:
    endpoints = sandbox.stats(log=False)["providers"]["anthropic"]["endpoints"]
    return int(endpoints.get("batches_create", {}).get("accepted", 0))


def _provider_requests(url: str) -> int:
    """Requests in every batch the provider holds, by its own list endpoint (the SDK, as a user would ask)."""
    import anthropic

    client = anthropic.Anthropic(api_key="fake-anthropic-bench", base_url=url, max_retries=0)
    return sum(sum(vars(batch.request_counts).values()) for batch in client.messages.batches.list(limit=100))


if __name__ == "__main__":
    from bench.environment import prefect_environment

    with prefect_environment():
        print(run())
