"""Spend end to end: real flow runs on the session's Prefect server, GROQ at the sandbox over HTTP.

The sandbox bills every call it accepts at the list price (``/_sandbox/stats``: ``list_price_nanousd``), so the
tests compare what the project recorded with what the provider would charge, and check a budget against the
provider's bill, not against our own bookkeeping.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from sqlalchemy import func, select

from blocks.database import CompanyDatabase
from blocks.llm import GroqLLM
from blocks.loading import clear_block_cache, load_database
from core.pricing import usd_to_nano
from core.rubric import TOTAL_CRITERION
from core.schema import (
    BulkAction,
    BulkActionOutcome,
    BulkActionStatus,
    CompanyScore,
    OutcomeStatus,
    SpendEntry,
    SpendReservation,
)
from core.spend import action_spend
from core.tiering import EscalationRule
from deployments.provision_limits import provision_limits
from flows.score_llm_adoption import score_llm_adoption
from providers.pacing import window_limit_name
from sandbox.server import SandboxServer
from tests.helpers import company_names, seed

API_KEY = "gsk-sandbox-secret-budget-0123456789"
TAG = "groq-budget"
SLOTS = 4


@pytest.fixture
def sandbox(provider_sandbox: SandboxServer) -> Iterator[SandboxServer]:
    provider_sandbox.reset(config=True)
    yield provider_sandbox
    provider_sandbox.reset(config=True)


@pytest.fixture(scope="module")
def groq(provider_sandbox: SandboxServer) -> dict[str, str]:
    """A premium and a cheap GROQ model at the sandbox, one batch = one call of 3 companies, 4 batches at once."""
    provision_limits({TAG: SLOTS})
    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(window_limit_name(TAG), 6000)
    common: dict[str, Any] = {
        "api_key": API_KEY,
        "base_url": f"{provider_sandbox.url}/openai/v1",
        "requests_per_minute": 6000,
        "concurrency_tag": TAG,
        "calls_per_batch": 1,
    }
    GroqLLM(**common).save("budget-premium", overwrite=True)
    GroqLLM(**common, model="llama-3.1-8b-instant").save("budget-cheap", overwrite=True)
    GroqLLM(**common, model="no-such-model-2099").save("budget-unpriced", overwrite=True)
    clear_block_cache()
    return {
        "premium": "groq-llm/budget-premium",
        "cheap": "groq-llm/budget-cheap",
        "unpriced": "groq-llm/budget-unpriced",
    }


@pytest.fixture
def sqlite_db() -> CompanyDatabase:
    """For the tests whose subject is not the database (stored costs are checked on both backends above)."""
    return load_database("default")


def billed(sandbox: SandboxServer) -> dict[str, Any]:
    stats: dict[str, Any] = sandbox.stats(log=False)["providers"]["groq"]
    return stats


def record_of(db: CompanyDatabase, bulk_action_id: int) -> BulkAction:
    with db.session() as session:
        record = session.get(BulkAction, bulk_action_id)
        assert record is not None
        session.expunge(record)
        return record


def latest_action(db: CompanyDatabase) -> BulkAction:
    with db.session() as session:
        record = session.scalars(select(BulkAction).order_by(BulkAction.id.desc()).limit(1)).first()
        assert record is not None
        session.expunge(record)
        return record


def outcome_statuses(db: CompanyDatabase, bulk_action_id: int) -> dict[OutcomeStatus, int]:
    with db.session() as session:
        rows = session.execute(
            select(BulkActionOutcome.status, func.count())
            .where(BulkActionOutcome.bulk_action_id == bulk_action_id)
            .group_by(BulkActionOutcome.status)
        ).all()
    return {status: count for status, count in rows}


def test_a_budget_hit_with_four_batches_in_flight_pauses_without_overspending_and_resumes_paying_nothing_twice(
    sandbox: SandboxServer, groq: dict[str, str], database_name: str, db: CompanyDatabase
) -> None:
    sandbox.configure("groq", latency_ms=30)
    ids = seed(db, 24, 301)
    budget = 0.005  # about half of the 24 companies' 240 calls at the list price

    state = score_llm_adoption(
        company_ids=ids, provider=groq["premium"], database=database_name, budget_usd=budget, return_state=True
    )

    record = latest_action(db)
    assert state.is_completed() and "paused" in (state.message or "")
    assert record.status is BulkActionStatus.PAUSED
    assert record.status_reason is not None and "budget reached" in record.status_reason
    bill = billed(sandbox)
    assert batches_at_once(state.state_details.flow_run_id) == SLOTS, "four batches should have run at once"
    with db.read_session() as session:
        spent = action_spend(session, record.id)
        held = session.scalar(
            select(func.count()).select_from(SpendReservation).where(SpendReservation.bulk_action_id == record.id)
        )
    assert spent == bill["list_price_nanousd"] > 0  # what we recorded is what the provider bills
    assert spent <= usd_to_nano(budget)  # and it never passed the budget
    assert held == 0
    statuses = outcome_statuses(db, record.id)
    assert statuses.get(OutcomeStatus.FAILED, 0) == 0  # nobody fails for a budget
    assert 0 < statuses.get(OutcomeStatus.PENDING, 0) < 24

    resumed = score_llm_adoption(
        bulk_action_id=record.id, provider=groq["premium"], database=database_name, budget_usd=1.0
    )

    assert resumed.status == "completed" and resumed.succeeded == 24 and resumed.failed == 0
    names = company_names(db, ids)
    for company_id in ids:
        # ten criteria, each asked once across the pause: no answer was paid for twice
        assert len(sandbox.requests(provider="groq", contains=names[company_id])) == 10, names[company_id]
    bill = billed(sandbox)
    assert bill["billed_calls"] == 240
    with db.read_session() as session:
        assert action_spend(session, record.id) == bill["list_price_nanousd"]
    assert resumed.spend_usd == pytest.approx(bill["list_price_usd"])


def test_bad_budgets_and_unpriced_models_are_refused_before_anything_is_written(
    sandbox: SandboxServer, groq: dict[str, str], sqlite_db: CompanyDatabase
) -> None:
    ids = seed(sqlite_db, 3, 302)
    before = latest_action(sqlite_db).id if _any_action(sqlite_db) else 0
    cases = [
        ({"provider": groq["premium"], "budget_usd": -1.0}, "budget_usd must be zero or more"),
        ({"provider": groq["premium"], "budget_usd": 0.00001}, "smaller than one call"),
        ({"provider": groq["unpriced"]}, "no price for groq model 'no-such-model-2099'"),
    ]
    for parameters, message in cases:
        state = score_llm_adoption(company_ids=ids, database="default", return_state=True, **parameters)
        assert state.is_failed(), parameters
        assert message in str(state.message) or message in repr(_exception(state)), (parameters, state.message)
    assert (latest_action(sqlite_db).id if _any_action(sqlite_db) else 0) == before
    assert billed(sandbox)["accepted"] == 0


def test_an_unpriced_model_runs_when_allowed_and_its_calls_are_marked(
    sandbox: SandboxServer, groq: dict[str, str], sqlite_db: CompanyDatabase
) -> None:
    ids = seed(sqlite_db, 2, 303)
    summary = score_llm_adoption(company_ids=ids, provider=groq["unpriced"], allow_unpriced=True, database="default")
    assert summary.status == "completed" and summary.spend_usd == 0
    with sqlite_db.read_session() as session:
        rows = session.execute(
            select(func.count(), func.sum(SpendEntry.cost_nanousd)).where(
                SpendEntry.bulk_action_id == summary.bulk_action_id, SpendEntry.unpriced.is_(True)
            )
        ).one()
    assert tuple(rows) == (20, 0)
    assert billed(sandbox)["unpriced_calls"] == 20


def test_tiering_escalates_exactly_the_uncertain_companies(
    sandbox: SandboxServer, groq: dict[str, str], sqlite_db: CompanyDatabase
) -> None:
    ids = seed(sqlite_db, 30, 304)
    rule = EscalationRule(band_edges=(15, 30), margin=4)

    summary = score_llm_adoption(
        company_ids=ids,
        provider=groq["premium"],
        tiers=[groq["cheap"], groq["premium"]],
        escalation=rule,
        database="default",
    )

    assert summary.status == "completed" and summary.succeeded == 30
    with sqlite_db.read_session() as session:
        totals = session.execute(
            select(CompanyScore.company_id, CompanyScore.tier, CompanyScore.score).where(
                CompanyScore.company_id.in_(ids), CompanyScore.criterion == TOTAL_CRITERION
            )
        ).all()
        calls = dict(
            session.execute(
                select(SpendEntry.model, func.sum(SpendEntry.calls))
                .where(SpendEntry.bulk_action_id == summary.bulk_action_id)
                .group_by(SpendEntry.model)
            )
            .tuples()
            .all()
        )
        spent = action_spend(session, summary.bulk_action_id)
    cheap = {company: score for company, tier, score in totals if tier == 0}
    premium = {company for company, tier, _ in totals if tier == 1}
    assert set(cheap) == set(ids)  # every company went through the cheap tier
    uncertain = {company for company, total in cheap.items() if rule.uncertainty(total) is not None}
    assert premium == uncertain  # and exactly the uncertain ones went on to the premium tier
    assert 0 < len(uncertain) < 30
    # the cheap tier asks all ten criteria in one call; the premium tier one call per criterion
    assert calls == {"llama-3.1-8b-instant": 30, "openai/gpt-oss-120b": 10 * len(uncertain)}
    assert spent == billed(sandbox)["list_price_nanousd"]


def batches_at_once(flow_run_id: Any) -> int:
    """The most batch task runs of the flow run that were running at the same moment (Prefect's own record)."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    # the server learns task-run ends from events, a moment later: a run with no end yet counts as still running
    never = datetime.max.replace(tzinfo=UTC)
    edges = sorted(
        edge
        for run in runs
        if run.start_time is not None
        for edge in ((run.start_time, 1), (run.end_time or never, -1))
    )
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    return peak


def _any_action(db: CompanyDatabase) -> bool:
    with db.read_session() as session:
        return bool(session.scalar(select(func.count()).select_from(BulkAction)))


def _exception(state: Any) -> BaseException | None:
    try:
        state.result()
    except BaseException as error:  # noqa: BLE001 - the flow's exception is what the test reads
        return error
    return None
