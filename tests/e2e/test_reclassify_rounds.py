"""Issue #14 end to end: an LLM reclassify waits for its Message Batches without holding a worker.

Deployed as a user deploys it, the reclassify's first flow run submits the batch, polls for ``wait_seconds``,
then hands the action over (status ``waiting``) to a continuation flow run of the same deployment scheduled
``recheck_seconds`` later, and completes.  While the batch processes no flow run of the action is running; the
continuation finds the batch ended, stages and applies it, and completes the action, with one request per
company and no batch submitted twice.
"""

from __future__ import annotations

import sys

import pytest
from sqlalchemy import select

from core.message_batch_tables import MessageBatch, MessageBatchStatus
from core.schema import BulkActionStatus, Company
from core.taxonomy import TAXONOMY_VERSION
from tests.e2e.deployed import RECLASSIFY, Deployed, bulk_action_of, get_bulk_action, run_cli, wait_for

pytestmark = pytest.mark.timeout(300)

PROVIDER = "anthropic-llm/e2e"
TAG = "anthropic-e2e"
BATCH_SECONDS = 20.0

ANTHROPIC_BLOCK = """\
import sys

from prefect.client.orchestration import get_client
from pydantic import SecretStr

from blocks.llm import AnthropicLLM

url, tag = sys.argv[1], sys.argv[2]
AnthropicLLM(
    api_key=SecretStr("fake-anthropic-e2e"), base_url=url, model="claude-haiku-4-5", concurrency_tag=tag
).save("e2e", overwrite=True)
with get_client(sync_client=True) as client:
    client.upsert_global_concurrency_limit_by_name("tag:" + tag, 2)
"""


def test_an_llm_reclassify_hands_over_between_rounds_and_completes_in_a_continuation(system: Deployed) -> None:
    system.ensure_workers()
    system.sandbox.reset(config=True)
    system.sandbox.configure("anthropic", job_duration_s=BATCH_SECONDS)
    run_cli([sys.executable, "-c", ANTHROPIC_BLOCK, system.sandbox.url, TAG], system.env)
    ids = system.companies(RECLASSIFY)

    first = system.deployment_run(
        "reclassify/reclassify",
        company_ids=ids,
        mode="llm",
        provider=PROVIDER,
        poll_seconds=1,
        wait_seconds=2,
        recheck_seconds=5,
    )
    system.expect_completed(first, timeout=120)  # the first round ended long before the batch does
    assert bulk_action_of(system.db, first) is None, "the first flow run let go of the action"
    waiting = wait_for(lambda: _waiting_action(system), 30, "the waiting action")
    record = get_bulk_action(system.db, waiting)
    assert record.status is BulkActionStatus.WAITING and "looks again" in (record.status_reason or "")
    with system.db.read_session() as session:
        batches = session.scalars(select(MessageBatch).where(MessageBatch.bulk_action_id == waiting)).all()
    assert [b.status for b in batches] == [MessageBatchStatus.IN_PROGRESS]
    of_action = list((record.parameters or {}).get("flow_runs", []))
    running = system.flow_runs(id={"any_": of_action}, state={"type": {"any_": ["RUNNING"]}})
    assert running == [], "no flow run of the action runs while its batch processes"

    done = wait_for(
        lambda: (r := get_bulk_action(system.db, waiting)).status.finished and r or None,
        BATCH_SECONDS + 150,
        "the continuation to complete the action",
    )
    assert done.status is BulkActionStatus.COMPLETED and (done.succeeded, done.failed) == (60, 0)
    flow_runs = list((done.parameters or {}).get("flow_runs", []))
    assert len(flow_runs) >= 2 and flow_runs[0] == first
    for run_id in flow_runs:  # the action is written finished before its flow run ends: wait for each run's end
        system.expect_completed(run_id, timeout=60)
    stats = system.sandbox.stats(log=False)["providers"]["anthropic"]["endpoints"]
    assert stats["batches_create"]["accepted"] == 1  # 60 requests, one sub-batch, never submitted again
    with system.db.read_session() as session:
        versions = session.scalars(select(Company.taxonomy_version).where(Company.id.in_(ids))).all()
    assert set(versions) == {TAXONOMY_VERSION}


def _waiting_action(system: Deployed) -> int | None:
    from core.schema import BulkAction

    with system.db.read_session() as session:
        found = session.scalar(
            select(BulkAction.id).where(
                BulkAction.action == "reclassify", BulkAction.status == BulkActionStatus.WAITING
            )
        )
    return int(found) if found is not None else None
