"""Issue #13 end to end: pause, resume and budgets on the deployed system (real server, process workers).

A paused or budget-stopped bulk action must free its worker (its flow run is *Suspended*, its provider slots
are back) and resume from its checkpoints without paying for an answer twice; two workers spending against one
creator's monthly budget must never pass it together, as the provider bills it (the sandbox's list price).
Everything is driven as a user does: ``prefect deployment run`` for the action, the pause and the resume.
"""

from __future__ import annotations

import json
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from core.pricing import usd_to_nano
from core.schema import BulkActionStatus, Company, OutcomeStatus, SpendEntry
from tests.e2e.deployed import (
    PAUSE,
    SHARED_A,
    SHARED_B,
    WORKERS,
    Deployed,
    bulk_action_of,
    get_bulk_action,
    outcomes,
    run_cli,
    wait_for,
)

pytestmark = pytest.mark.timeout(480)

TAG, SLOTS = "groq-e2e-spend", 2
PROVIDER = "groq-llm/spend"
CREATOR = "e2e-shared-budget"

SPEND_BLOCKS = """\
import json
import sys

from prefect.client.orchestration import get_client
from pydantic import SecretStr

from blocks.llm import GroqLLM
from blocks.spend import SpendPolicy

url, tag, slots, creator_budget = sys.argv[1], sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4])
GroqLLM(
    api_key=SecretStr("gsk-e2e-spend-secret-0123456789"),
    base_url=url + "/openai/v1",
    requests_per_minute=6000,
    concurrency_tag=tag,
    calls_per_batch=1,
).save("spend", overwrite=True)
SpendPolicy(monthly_budget_by_creator=creator_budget).save("default", overwrite=True)
with get_client(sync_client=True) as client:
    client.upsert_global_concurrency_limit_by_name("tag:" + tag, slots)
    client.upsert_global_concurrency_limit_by_name("window:" + tag, 6000)
"""


def spend_blocks(system: Deployed, creator_budget: dict[str, float]) -> None:
    """The GROQ block and the spend policy, saved the way a user would (a few lines of Python)."""
    args = [system.sandbox.url, TAG, str(SLOTS), json.dumps(creator_budget)]
    run_cli([sys.executable, "-c", SPEND_BLOCKS, *args], system.env)


def names_of(system: Deployed, ids: list[int]) -> dict[int, str]:
    with system.db.session() as session:
        return dict(session.execute(select(Company.id, Company.name).where(Company.id.in_(ids))).tuples().all())


def asked(system: Deployed, name: str) -> int:
    """Answers the sandbox gave (and billed) for this company: refused requests (a 429) are not answers."""
    return sum(entry["status"] == 200 for entry in system.sandbox.requests(provider="groq", contains=name))


def suspended(system: Deployed, flow_run_id: str) -> bool:
    run = system.flow_run(flow_run_id)
    return run["state_type"] == "PAUSED" and run["state_name"] == "Suspended"


def test_pause_and_resume_from_the_cli_free_the_worker_and_pay_nothing_twice(system: Deployed) -> None:
    system.ensure_workers()
    system.sandbox.reset(config=True)  # no limits or faults an earlier test configured
    # a batch of 30 calls takes ~9 s and the action ~40 s: time for the pause's own flow run to start mid-way
    system.sandbox.configure("groq", latency_ms=300)
    spend_blocks(system, {})
    ids = system.companies(PAUSE)
    run_id = system.deployment_run("score-llm-adoption/score-llm-adoption", company_ids=ids, provider=PROVIDER)

    def running() -> int | None:
        record = bulk_action_of(system.db, run_id)
        return record.id if record is not None and record.status is BulkActionStatus.RUNNING else None

    bulk_action_id = wait_for(running, 120, "the action to start running")
    pause = system.deployment_run("pause-bulk-action/pause-bulk-action", bulk_action_id=bulk_action_id)
    system.expect_completed(pause)
    wait_for(lambda: suspended(system, run_id) or None, 120, "the action's flow run to be suspended")

    record = get_bulk_action(system.db, bulk_action_id)
    assert record.status is BulkActionStatus.PAUSED and record.status_reason == "paused on request"
    assert system.limit(f"tag:{TAG}")["active_slots"] == 0, "a suspended run holds no provider slot"
    assert system.worker_of(run_id) is not None
    statuses = [status for status, _ in outcomes(system.db, bulk_action_id).values()]
    assert OutcomeStatus.PENDING in statuses and OutcomeStatus.FAILED not in statuses
    paid_before = system.sandbox.stats(log=False)["providers"]["groq"]["billed_calls"]
    assert 0 < paid_before < 240

    resume = system.deployment_run("resume-bulk-action/resume-bulk-action", bulk_action_id=bulk_action_id)
    system.expect_completed(resume)
    system.expect_completed(run_id)  # the same flow run, rescheduled, finishes the action

    record = get_bulk_action(system.db, bulk_action_id)
    assert record.status is BulkActionStatus.COMPLETED and (record.succeeded, record.failed) == (24, 0)
    history = [state["name"] for state in system.api("GET", "/flow_run_states/", params={"flow_run_id": run_id})]
    assert "Suspended" in history and history[-1] == "Completed", history
    for name in names_of(system, ids).values():
        assert asked(system, name) == 10, f"{name}: each of the ten criteria is paid for exactly once"
    assert system.sandbox.stats(log=False)["providers"]["groq"]["billed_calls"] == 240


def test_two_workers_share_a_creators_monthly_budget_and_resume_after_a_raise(system: Deployed) -> None:
    system.ensure_workers()
    system.sandbox.reset(config=True)
    system.sandbox.configure("groq", latency_ms=20)
    budget = 0.004  # about 9 of the 24 companies' worth of calls
    spend_blocks(system, {CREATOR: budget})
    groups = [system.companies(SHARED_A), system.companies(SHARED_B)]
    with ThreadPoolExecutor(2) as pool:
        run_ids = list(
            pool.map(
                lambda ids: system.deployment_run(
                    "score-llm-adoption/score-llm-adoption", company_ids=ids, provider=PROVIDER, created_by=CREATOR
                ),
                groups,
            )
        )
    for run_id in run_ids:
        wait_for(lambda run_id=run_id: suspended(system, run_id) or None, 120, "a budget-stopped run to suspend")
    assert {system.worker_of(run_id) for run_id in run_ids} == set(WORKERS), "each worker should run one action"
    records = [bulk_action_of(system.db, run_id) for run_id in run_ids]
    assert all(r is not None and r.status is BulkActionStatus.PAUSED for r in records)
    assert all(r is not None and f"creator '{CREATOR}'" in (r.status_reason or "") for r in records)
    billed = system.sandbox.stats(log=False)["providers"]["groq"]
    assert billed["list_price_nanousd"] <= usd_to_nano(budget), "the provider billed past the shared budget"
    with system.db.session() as session:
        recorded = session.scalar(select(func.sum(SpendEntry.cost_nanousd)).where(SpendEntry.created_by == CREATOR))
    assert recorded == billed["list_price_nanousd"]

    spend_blocks(system, {CREATOR: 1.0})  # the operator raises the monthly budget in the block
    for record in records:
        assert record is not None
        system.expect_completed(
            system.deployment_run("resume-bulk-action/resume-bulk-action", bulk_action_id=record.id)
        )
    for run_id in run_ids:
        system.expect_completed(run_id)
    for ids in groups:
        for name in names_of(system, ids).values():
            assert asked(system, name) == 10, name
    assert system.sandbox.stats(log=False)["providers"]["groq"]["billed_calls"] == 240
