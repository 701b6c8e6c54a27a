"""score_llm_adoption end to end: real flow runs on the session's Prefect server, GROQ at the sandbox over HTTP.

Provider calls are counted where they land (the sandbox), pacing is judged by the sandbox's own sliding window,
and secrets are looked for in every log record, stored row and dead job.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from sqlalchemy import select, update

from blocks.database import CompanyDatabase
from blocks.llm import GroqLLM
from blocks.loading import clear_block_cache, load_database
from core.rubric import CRITERIA, TOTAL_CRITERION, Level
from core.schema import BulkAction, BulkActionOutcome, Company, CompanyScore, DeadJob
from core.scores import company_scores
from deployments.provision_limits import provision_limits
from flows.engine import BulkActionSummary
from flows.score_llm_adoption import score_llm_adoption
from providers.pacing import window_limit_name
from sandbox.server import SandboxServer
from tests.helpers import company_names, dead_jobs, seed

API_KEY = "gsk-sandbox-secret-scoring-0123456789"
PACE_LIMIT = 20  # requests per PACE_WINDOW_S, enforced by the sandbox and held by the pacer
PACE_WINDOW_S = 2.0


@pytest.fixture
def sandbox(provider_sandbox: SandboxServer) -> Iterator[SandboxServer]:
    provider_sandbox.reset(config=True)
    yield provider_sandbox
    provider_sandbox.reset(config=True)


@pytest.fixture(scope="module")
def groq_providers(provider_sandbox: SandboxServer) -> dict[str, str]:
    """GROQ blocks at the sandbox: one with budget to spare, one paced to PACE_LIMIT per PACE_WINDOW_S."""
    provision_limits({"groq-sandbox": 2, "groq-pacing": 2})
    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(window_limit_name("groq-sandbox"), 6000)
        client.upsert_global_concurrency_limit_by_name(window_limit_name("groq-pacing"), PACE_LIMIT)
    common: dict[str, Any] = {"api_key": API_KEY, "base_url": f"{provider_sandbox.url}/openai/v1"}
    GroqLLM(**common, requests_per_minute=6000, concurrency_tag="groq-sandbox").save("sandbox", overwrite=True)
    GroqLLM(
        **common,
        requests_per_minute=PACE_LIMIT,
        rate_window_seconds=PACE_WINDOW_S,
        concurrency_tag="groq-pacing",
    ).save("pacing", overwrite=True)
    clear_block_cache()
    return {"sandbox": "groq-llm/sandbox", "pacing": "groq-llm/pacing"}


def scores_of(db: CompanyDatabase, company_id: int) -> list[CompanyScore]:
    with db.session() as session:
        rows = company_scores(session, company_id)
        session.expunge_all()
        return rows


def assert_complete_scores(rows: list[CompanyScore], provider: str, model: str, bulk_action_id: int) -> None:
    assert [r.criterion for r in rows] == [c.key for c in CRITERIA] + [TOTAL_CRITERION]
    assert {(r.provider, r.model, r.bulk_action_id) for r in rows} == {(provider, model, bulk_action_id)}
    *criteria, total = rows
    assert all(Level(r.level).points == r.score and r.reasoning for r in criteria)
    assert total.level is None and total.score == sum(r.score for r in criteria) and 0 <= total.score <= 50
    assert total.prompt_tokens == sum(r.prompt_tokens for r in criteria) > 0
    assert len({r.input_sha256 for r in rows}) == 1 and len({r.scored_at for r in rows}) == 1


def accepted_groq_calls(sandbox: SandboxServer) -> int:
    count: int = sandbox.stats(log=False)["providers"]["groq"]["accepted"]
    return count


def test_local_rules_store_eleven_scores_per_company_and_skip_current_ones(
    db: CompanyDatabase, database_name: str
) -> None:
    ids = seed(db, 4, seed_value=3001)
    first = score_llm_adoption(company_ids=ids, database=database_name, created_by="pytest")
    assert isinstance(first, BulkActionSummary)
    assert (first.status, first.succeeded, first.skipped, first.failed) == ("completed", 4, 0, 0)
    assert first.batches == 2 and first.provider_calls == 40  # 2 calls of 3: too few to share a task run over 4 slots
    for company_id in ids:
        rows = scores_of(db, company_id)
        assert_complete_scores(rows, "local-rules", "local-rules-v1", first.bulk_action_id)
        assert all("not a model judgement" in (r.reasoning or "") for r in rows[:-1])

    again = score_llm_adoption(company_ids=ids, database=database_name)
    assert isinstance(again, BulkActionSummary) and again.bulk_action_id != first.bulk_action_id
    assert (again.succeeded, again.skipped, again.provider_calls) == (0, 4, 0)

    forced = score_llm_adoption(company_ids=ids[:1], database=database_name, rescore=True)
    assert isinstance(forced, BulkActionSummary) and (forced.succeeded, forced.provider_calls) == (1, 10)
    rows = scores_of(db, ids[0])
    assert_complete_scores(rows, "local-rules", "local-rules-v1", forced.bulk_action_id)  # overwritten, not doubled


def test_groq_poison_company_becomes_a_dead_job_and_a_rerun_pays_nothing(
    sandbox: SandboxServer, groq_providers: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    db = load_database("default")
    ids = seed(db, 6, seed_value=3101)
    poison = ids[4]
    with db.session() as session:
        session.execute(update(Company).where(Company.id == poison).values(name="Poison Pill Analytics"))
    sandbox.configure("groq", faults=[{"kind": "invalid_output", "match": "Poison Pill Analytics"}])

    summary = score_llm_adoption(company_ids=ids, provider=groq_providers["sandbox"])

    assert isinstance(summary, BulkActionSummary)
    assert (summary.status, summary.succeeded, summary.failed) == ("completed", 5, 1)
    [dead] = dead_jobs(db, summary.bulk_action_id)
    assert (dead.company_id, dead.error_class, dead.attempts, dead.retryable) == (
        poison,
        "InvalidProviderOutputError",
        3,
        False,
    )
    assert "AI strategy" in dead.error_message and "3 calls" in dead.error_message
    assert scores_of(db, poison) == []
    for company_id in ids:
        if company_id != poison:
            assert_complete_scores(scores_of(db, company_id), "groq", "openai/gpt-oss-120b", summary.bulk_action_id)
    # Ten calls for each healthy company (its batch-mate's failure cost it nothing), three for the poison one.
    assert summary.provider_calls == accepted_groq_calls(sandbox) == 5 * 10 + 3
    names = company_names(db, ids)
    for company_id in ids:
        if company_id != poison:
            assert len(sandbox.requests(provider="groq", contains=names[company_id])) == 10

    rerun = score_llm_adoption(bulk_action_id=summary.bulk_action_id, provider=groq_providers["sandbox"])
    assert isinstance(rerun, BulkActionSummary) and rerun.bulk_action_id == summary.bulk_action_id
    assert rerun.batches_from_checkpoint == rerun.batches == 2
    assert accepted_groq_calls(sandbox) == 53  # not one new call (the summary repeats the checkpoints' counts)

    assert caplog.records and not [r for r in caplog.records if API_KEY in r.getMessage()]
    with db.session() as session:
        stored = [
            *session.scalars(select(CompanyScore.reasoning).where(CompanyScore.company_id.in_(ids))),
            *session.scalars(select(DeadJob.error_message).where(DeadJob.company_id.in_(ids))),
            *session.scalars(select(BulkActionOutcome.detail).where(BulkActionOutcome.company_id.in_(ids))),
            str(session.get(BulkAction, summary.bulk_action_id).__dict__),  # type: ignore[union-attr]
        ]
    assert not [text for text in stored if API_KEY in str(text)]


def test_scoring_holds_groq_to_its_limit_exactly_and_uses_it(
    sandbox: SandboxServer, groq_providers: dict[str, str]
) -> None:
    sandbox.configure("groq", requests_per_minute=PACE_LIMIT, rate_window_s=PACE_WINDOW_S)
    db = load_database("default")
    ids = seed(db, 6, seed_value=3201)  # two batches of three in flight at once: 60 calls, three windows

    summary = score_llm_adoption(company_ids=ids, provider=groq_providers["pacing"])

    assert isinstance(summary, BulkActionSummary) and summary.succeeded == 6
    stats = sandbox.stats(log=False)["providers"]["groq"]
    assert stats["rate_limited"] == 0 and stats["accepted"] == 60
    assert stats["peak_rate_window"] == PACE_LIMIT  # the whole budget, never more
    # Throughput against a full 60-s window is measured by bench/bench_scoring.py (wall-clock bounds here would
    # flake: a Prefect server on SQLite answers colliding writes with 503, which its client retries after ~2 s).
