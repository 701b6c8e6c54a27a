"""LLM reclassify end to end on the sandbox's Anthropic Message Batches (real SDK, real HTTP, real database).

The sandbox's batches take several polls, return their lines in an order unrelated to the requests, and can be
made to error, cancel or expire items and to answer outside the taxonomy (``invalid_output``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from prefect.settings import PREFECT_API_URL
from sqlalchemy import func, select, update

from blocks.database import CompanyDatabase
from blocks.llm import AnthropicLLM
from blocks.loading import clear_block_cache, load_database
from core.failpoints import ENV, EXIT_CODE
from core.message_batch_tables import MessageBatch, MessageBatchResult, MessageBatchStatus
from core.schema import (
    BulkActionOutcome,
    BulkActionStatus,
    Company,
    CompanyHistory,
    DeadJob,
    OutcomeStatus,
    SpendEntry,
)
from core.taxonomy import TAXONOMY_VERSION, check_classification
from deployments.provision_limits import provision_limits
from flows.reclassify import reclassify
from flows.retry_errors import retry_errors
from sandbox.server import SandboxServer
from tests.helpers import bulk_action, latest_bulk_action, seed

TAG = "anthropic-reclassify"
MODEL = "claude-haiku-4-5"


@pytest.fixture
def sandbox(provider_sandbox: SandboxServer) -> Iterator[SandboxServer]:
    provider_sandbox.reset(config=True)
    provider_sandbox.configure("anthropic", job_duration_s=0.6)  # a batch takes several 0.2-s polls
    yield provider_sandbox
    provider_sandbox.reset(config=True)


@pytest.fixture(scope="module")
def anthropic_block(provider_sandbox: SandboxServer) -> str:
    provision_limits({TAG: 2})
    AnthropicLLM(
        api_key="fake-anthropic-reclassify-secret-0123456789-not-real",
        base_url=provider_sandbox.url,
        model=MODEL,
        timeout_seconds=2.0,
        concurrency_tag=TAG,
    ).save("reclassify", overwrite=True)
    clear_block_cache()
    return "anthropic-llm/reclassify"


def llm(ids: list[int], provider: str, database: str, **options: Any) -> Any:
    return reclassify(company_ids=ids, mode="llm", provider=provider, database=database, poll_seconds=0.2, **options)


def classified(db: CompanyDatabase, ids: list[int]) -> dict[int, tuple[Any, ...]]:
    with db.read_session() as session:
        rows = session.execute(
            select(
                Company.id,
                Company.sector,
                Company.subsector,
                Company.business_model,
                Company.taxonomy_version,
                Company.classification_mode,
                Company.classification_model,
                Company.needs_review,
                Company.review_reason,
            ).where(Company.id.in_(ids))
        ).all()
    return {row[0]: tuple(row[1:]) for row in rows}


def outcomes(db: CompanyDatabase, bulk_action_id: int) -> dict[int, tuple[OutcomeStatus, str]]:
    with db.read_session() as session:
        rows = session.execute(
            select(BulkActionOutcome.company_id, BulkActionOutcome.status, BulkActionOutcome.detail).where(
                BulkActionOutcome.bulk_action_id == bulk_action_id
            )
        ).all()
    return {cid: (status, detail or "") for cid, status, detail in rows}


def batch_items(sandbox: SandboxServer) -> int:
    """Batch requests the sandbox received (items across every batch POST)."""
    log = sandbox.stats(provider="anthropic")["log"]
    return sum(int(entry.get("items", 0)) for entry in log if entry.get("endpoint") == "batches_create")


def test_every_company_is_classified_through_batches_of_at_most_100_with_one_request_each(
    sandbox: SandboxServer, anthropic_block: str, database_name: str, db: CompanyDatabase
) -> None:
    ids = seed(db, 230, 2101)

    summary = llm(ids, anthropic_block, database_name)

    assert (summary.status, summary.total, summary.succeeded, summary.failed) == ("completed", 230, 230, 0)
    with db.read_session() as session:
        batches = session.scalars(
            select(MessageBatch).where(MessageBatch.bulk_action_id == summary.bulk_action_id)
        ).all()
        staged_left = session.scalar(select(func.count()).select_from(MessageBatchResult))
        ledger = session.execute(
            select(func.count(), func.sum(SpendEntry.cost_nanousd)).where(
                SpendEntry.bulk_action_id == summary.bulk_action_id
            )
        ).one()
    assert sorted(b.request_count for b in batches) == [30, 100, 100]
    assert all(b.status == MessageBatchStatus.STAGED and b.provider_batch_id for b in batches)
    assert staged_left == 0
    assert ledger[0] == 230 and ledger[1] > 0  # one ledger row per company, at the batch price
    values = classified(db, ids)
    for sector, subsector, model, version, mode, model_name, review, _ in values.values():
        assert check_classification(sector, subsector, model, require=("sector", "subsector", "business_model")) == []
        assert (version, mode, model_name, review) == (TAXONOMY_VERSION, "llm", MODEL, False)
    # without force, a second run finds every company current and sends nothing
    again = llm(ids, anthropic_block, database_name)
    assert (again.succeeded, again.skipped, again.provider_calls) == (0, 230, 0)


# --- crashes: the child process really dies at a failpoint; the rerun takes the action over ---------------------

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def crash_at(failpoint: str, ids: list[int], provider: str, database: str) -> int:
    """Run the reclassify in a child process that dies at ``failpoint``; returns the bulk action it left."""
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value()), "PYTHONPATH": REPO_ROOT, ENV: failpoint}
    env.pop("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", None)
    code = (
        "from flows.reclassify import reclassify\n"
        f"reclassify(company_ids={ids!r}, mode='llm', provider={provider!r}, database={database!r}, poll_seconds=0.2)\n"
    )
    child = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO_ROOT, capture_output=True, timeout=120)
    assert child.returncode == EXIT_CODE, child.stderr.decode()[-2000:]
    record = latest_bulk_action(load_database(database))
    assert record is not None and record.status is BulkActionStatus.RUNNING  # the crash left it mid-flight
    return record.id


def history_rows(db: CompanyDatabase, bulk_action_id: int) -> list[tuple[int, str]]:
    with db.read_session() as session:
        return [
            (cid, field)
            for cid, field in session.execute(
                select(CompanyHistory.company_id, CompanyHistory.field).where(
                    CompanyHistory.bulk_action_id == bulk_action_id
                )
            )
        ]


def batches_created(sandbox: SandboxServer) -> int:
    return int(sandbox.stats(log=False)["providers"]["anthropic"]["endpoints"]["batches_create"]["accepted"])


def assert_applied_once(db: CompanyDatabase, bulk_action_id: int, ids: list[int]) -> None:
    rows = history_rows(db, bulk_action_id)
    assert len(rows) == len(set(rows))  # no field of any company was written twice
    assert {cid for cid, _ in rows} == set(ids)
    with db.read_session() as session:
        ledger = (
            session.execute(select(SpendEntry.company_id).where(SpendEntry.bulk_action_id == bulk_action_id))
            .scalars()
            .all()
        )
        staged = session.scalar(
            select(func.count())
            .select_from(MessageBatchResult)
            .where(MessageBatchResult.bulk_action_id == bulk_action_id)
        )
    assert sorted(ledger) == sorted(ids) and staged == 0  # each request billed once; nothing left staged


@pytest.mark.parametrize("failpoint", ["reclassify.after_post", "reclassify.staging", "reclassify.applying"])
def test_a_crash_at_any_phase_neither_resubmits_nor_applies_twice(
    failpoint: str, sandbox: SandboxServer, anthropic_block: str
) -> None:
    db = load_database("default")
    ids = seed(db, 150, 2102 + len(failpoint))
    bulk_action_id = crash_at(failpoint, ids, anthropic_block, "default")
    created = batches_created(sandbox)
    assert created == (1 if failpoint == "reclassify.after_post" else 2)

    summary = reclassify(bulk_action_id=bulk_action_id, takeover=True)

    assert (summary.status, summary.succeeded, summary.failed) == ("completed", 150, 0)
    assert batches_created(sandbox) == 2  # the lost POST's batch was found and adopted, not submitted again
    assert_applied_once(db, bulk_action_id, ids)
    with db.read_session() as session:
        notes = session.scalars(select(MessageBatch.note).where(MessageBatch.bulk_action_id == bulk_action_id)).all()
    assert ("reclassify.after_post" == failpoint) == any("adopted" in (note or "") for note in notes)


def test_a_post_whose_answer_is_lost_is_adopted_not_resubmitted(sandbox: SandboxServer, anthropic_block: str) -> None:
    db = load_database("default")
    ids = seed(db, 60, 2110)
    # the sandbox creates the batch, then holds its answer past the client's timeout
    sandbox.configure(
        "anthropic", timeout_s=3.0, faults=[{"kind": "timeout", "endpoint": "batches_create", "times": 1}]
    )

    summary = llm(ids, anthropic_block, "default")

    assert (summary.status, summary.succeeded) == ("completed", 60)
    assert batches_created(sandbox) == 1
    assert_applied_once(db, summary.bulk_action_id, ids)


def named(db: CompanyDatabase, ids: list[int], names: dict[int, str]) -> None:
    with db.session() as session:
        for index, name in names.items():
            session.execute(update(Company).where(Company.id == ids[index]).values(name=name))


def test_errored_canceled_expired_and_invalid_results_each_end_where_they_belong(
    sandbox: SandboxServer, anthropic_block: str, database_name: str, db: CompanyDatabase
) -> None:
    ids = seed(db, 40, 2120)
    named(db, ids, {3: "Erroring Works", 7: "Canceled Items", 11: "Expiring Goods", 15: "Nonsense Answers"})
    sandbox.configure(
        "anthropic",
        faults=[
            {"kind": "fail_run", "match": "Erroring Works"},
            {"kind": "cancel", "match": "Canceled Items"},
            {"kind": "expire", "match": "Expiring Goods"},
            {"kind": "invalid_output", "match": "Nonsense Answers"},
        ],
    )

    summary = llm(ids, anthropic_block, database_name)

    assert (summary.succeeded, summary.skipped, summary.failed) == (36, 1, 3)
    results = outcomes(db, summary.bulk_action_id)
    assert results[ids[3]][0] is OutcomeStatus.FAILED and "errored" in results[ids[3]][1]
    assert results[ids[7]][0] is OutcomeStatus.FAILED and "canceled" in results[ids[7]][1]
    assert results[ids[11]][0] is OutcomeStatus.FAILED and "expired" in results[ids[11]][1]
    assert results[ids[15]][0] is OutcomeStatus.SKIPPED and results[ids[15]][1].startswith("needs review")
    values = classified(db, ids)
    review, reason = values[ids[15]][6:]
    assert review is True and ("does not fit the taxonomy" in reason or "not JSON" in reason)
    assert values[ids[15]][3] is None  # nothing of the invalid answer was written
    with db.read_session() as session:
        dead = session.scalars(select(DeadJob.company_id).where(DeadJob.bulk_action_id == summary.bulk_action_id))
        assert sorted(dead) == sorted([ids[3], ids[7], ids[11]])
        billed = session.scalars(
            select(SpendEntry.company_id).where(SpendEntry.bulk_action_id == summary.bulk_action_id)
        )
        assert sorted(billed) == sorted(set(ids) - {ids[3], ids[7], ids[11]})  # only succeeded requests are billed

    # retry_errors reruns exactly the failed three, on the same provider and options, and links back
    sandbox.configure("anthropic", faults=[])
    retry = retry_errors(retry_of=summary.bulk_action_id, database=database_name)
    assert (retry.total, retry.succeeded, retry.failed) == (3, 3, 0)
    record = bulk_action(db, retry.bulk_action_id)
    assert record.parameters is not None and record.parameters["retry_of"] == summary.bulk_action_id
    assert record.parameters["provider"] == anthropic_block and record.parameters["options"]["mode"] == "llm"


def test_column_mode_asks_for_one_field_with_a_shorter_prompt_and_writes_only_it(
    sandbox: SandboxServer, anthropic_block: str
) -> None:
    db = load_database("default")
    ids = seed(db, 24, 2130)
    with db.session() as session:
        session.execute(update(Company).where(Company.id.in_(ids)).values(sector=None, business_model="B2C"))
    full = llm(ids[:12], anthropic_block, "default")
    column = llm(ids[12:], anthropic_block, "default", target_column="business_model")

    assert column.succeeded == 12
    values = classified(db, ids)
    for sector, subsector, business_model, *_ in (values[cid] for cid in ids[12:]):
        assert sector is None and subsector is None and business_model is not None  # only the asked field
    assert all(values[cid][0] is not None for cid in ids[:12])
    with db.read_session() as session:
        tokens = {
            action: session.scalar(select(func.avg(SpendEntry.input_tokens)).where(SpendEntry.bulk_action_id == action))
            for action in (full.bulk_action_id, column.bulk_action_id)
        }
    assert tokens[column.bulk_action_id] < 0.6 * tokens[full.bulk_action_id]  # no section list, one key


def test_web_search_adds_the_tool_to_every_request_and_its_fee_to_the_ledger(
    sandbox: SandboxServer, anthropic_block: str
) -> None:
    db = load_database("default")
    ids = seed(db, 5, 2140)
    plain = llm(ids[:2], anthropic_block, "default")
    searched = llm(ids[2:], anthropic_block, "default", web_search=True)

    assert searched.succeeded == 3
    with db.read_session() as session:
        per_company = {
            action: session.scalar(select(func.avg(SpendEntry.cost_nanousd)).where(SpendEntry.bulk_action_id == action))
            for action in (plain.bulk_action_id, searched.bulk_action_id)
        }
    # one search at $10 per 1,000 is 10,000,000 nano-dollars on top of the tokens
    assert per_company[searched.bulk_action_id] - per_company[plain.bulk_action_id] >= 10_000_000


def test_a_budget_stops_submitting_and_the_action_pauses_with_what_it_paid_for_applied(
    sandbox: SandboxServer, anthropic_block: str
) -> None:
    db = load_database("default")
    ids = seed(db, 250, 2150)
    # a sub-batch of 100 reserves about $0.14 at worst (Haiku, batch price): the second is refused before its POST
    state = llm(ids, anthropic_block, "default", budget_usd=0.2, return_state=True)

    record = latest_bulk_action(db)
    assert record is not None and record.status is BulkActionStatus.PAUSED, record.status_reason
    assert "budget" in (record.status_reason or "")
    assert state.is_completed() and "paused" in str(state.message)  # not deployed: nothing to suspend
    done = outcomes(db, record.id)
    applied = [cid for cid, (status, _) in done.items() if status is OutcomeStatus.SUCCEEDED]
    assert 0 < len(applied) < 250 and len(applied) % 100 == 0
    with db.read_session() as session:
        spent = session.scalar(select(func.sum(SpendEntry.cost_nanousd)).where(SpendEntry.bulk_action_id == record.id))
    assert spent is not None and spent <= 200_000_000

    # a resume with a raised budget submits the rest, and pays nothing again for what was applied
    resumed = reclassify(bulk_action_id=record.id, budget_usd=1.0)
    assert (resumed.status, resumed.succeeded, resumed.failed) == ("completed", 250, 0)
    assert_applied_once(db, record.id, ids)
