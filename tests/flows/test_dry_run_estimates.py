"""Dry runs estimate calls, cost and duration without writing or calling anything, and the estimate holds.

Real flow runs on the session's Prefect server, providers at the sandbox over HTTP.  "Nothing written" is
counted in every table an action writes; "nothing called" is the sandbox's own count of requests received.
Each estimate is then compared with the real run that follows: its calls and skips with the run's summary,
its cost with the ledger (GROQ) or with what the provider bills (Parallel).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
from prefect.filesystems import LocalFileSystem
from prefect.states import State
from sqlalchemy import func, select, update

from blocks.database import CompanyDatabase
from blocks.embeddings import WorkersAIEmbeddings
from blocks.enrichment import ParallelEnrichment
from blocks.llm import GroqLLM
from blocks.loading import clear_block_cache, load_database
from core.estimates import (
    PARALLEL_RUN_SECONDS,
)
from core.pricing import DEFAULT_PRICES
from core.schema import (
    BulkAction,
    BulkActionOutcome,
    Company,
    CompanyEmbedding,
    CompanyHistory,
    CompanyScore,
    DeadJob,
    SpendAccount,
    SpendEntry,
    SpendReservation,
)
from core.spend import action_spend
from deployments.provision_limits import provision_limits
from flows.engine import BulkActionSummary, DryRunReport
from flows.enrich_companies import enrich_companies
from flows.generate_embeddings import generate_embeddings
from flows.score_llm_adoption import score_llm_adoption
from providers.pacing import window_limit_name
from sandbox.server import SandboxServer
from tests.helpers import seed

GROQ_TAG = "groq-estimates"
PARALLEL_TAG = "parallel-estimates"
WRITTEN_TABLES = (
    BulkAction,
    BulkActionOutcome,
    SpendEntry,
    SpendAccount,
    SpendReservation,
    CompanyScore,
    CompanyEmbedding,
    CompanyHistory,
    DeadJob,
)


@pytest.fixture
def sandbox(provider_sandbox: SandboxServer) -> Iterator[SandboxServer]:
    provider_sandbox.reset(config=True)
    provider_sandbox.configure("parallel", job_duration_s=0.2)
    yield provider_sandbox
    provider_sandbox.reset(config=True)


@pytest.fixture(scope="module")
def providers(provider_sandbox: SandboxServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A GROQ block and a Parallel block at the sandbox, each with limits of its own."""
    provision_limits({GROQ_TAG: 2, PARALLEL_TAG: 2})
    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(window_limit_name(GROQ_TAG), 6000)
    GroqLLM(
        api_key="gsk-sandbox-estimates-0123456789",  # type: ignore[arg-type]
        base_url=f"{provider_sandbox.url}/openai/v1",
        requests_per_minute=6000,
        concurrency_tag=GROQ_TAG,
    ).save("estimates", overwrite=True)
    GroqLLM(
        api_key="gsk-sandbox-estimates-0123456789",  # type: ignore[arg-type]
        base_url=f"{provider_sandbox.url}/openai/v1",
        model="openai/gpt-oss-20b",
        requests_per_minute=6000,
        concurrency_tag=GROQ_TAG,
    ).save("estimates-small", overwrite=True)
    WorkersAIEmbeddings(
        account_id="acct-estimates",
        api_token="cf-estimates-0123456789",  # type: ignore[arg-type]
        base_url=provider_sandbox.url,
    ).save("estimates", overwrite=True)
    storage: Path = tmp_path_factory.mktemp("estimates-storage")
    LocalFileSystem(basepath=str(storage)).save("estimates", overwrite=True)
    ParallelEnrichment(
        api_key="par-estimates-0123456789",  # type: ignore[arg-type]
        base_url=provider_sandbox.url,
        processor="base",
        poll_slice_seconds=5,
        request_timeout_seconds=5,
        concurrency_tag=PARALLEL_TAG,
        storage_block="local-file-system/estimates",
    ).save("estimates", overwrite=True)
    clear_block_cache()
    return {
        "groq": "groq-llm/estimates",
        "groq-small": "groq-llm/estimates-small",
        "parallel": "parallel-enrichment/estimates",
        "workers-ai": "workers-ai-embeddings/estimates",
    }


def row_counts(db: CompanyDatabase) -> dict[str, int]:
    with db.read_session() as session:
        return {t.__tablename__: int(session.scalar(select(func.count()).select_from(t)) or 0) for t in WRITTEN_TABLES}


def requests_received(sandbox: SandboxServer) -> dict[str, int]:
    return {name: int(p["received"]) for name, p in sandbox.stats(log=False)["providers"].items()}


def run_dry(flow: Any, **parameters: Any) -> tuple[DryRunReport, str]:
    """A dry run's report and the markdown of its artifact."""
    state: State[Any] = flow(dry_run=True, return_state=True, **parameters)
    report = state.result()
    assert isinstance(report, DryRunReport)
    with get_client(sync_client=True) as client:
        [artifact] = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id]))
        )
    return report, str(artifact.data)


def set_website(db: CompanyDatabase, company_id: int, website: str | None) -> None:
    with db.session() as session:
        session.execute(update(Company).where(Company.id == company_id).values(website=website))


def test_a_dry_run_writes_nothing_and_calls_no_provider(
    db: CompanyDatabase,
    database_name: str,
    sandbox: SandboxServer,
    providers: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    ids = seed(db, 6, seed_value=7801)
    set_website(db, ids[0], None)
    before = row_counts(db)

    scoring, markdown = run_dry(score_llm_adoption, company_ids=ids, provider=providers["groq"], database=database_name)
    tiered, _ = run_dry(
        score_llm_adoption,
        company_ids=ids,
        provider=providers["groq"],
        tiers=[providers["groq-small"], providers["groq"]],
        database=database_name,
    )
    enrichment, _ = run_dry(enrich_companies, company_ids=ids, provider=providers["parallel"], database=database_name)
    embeddings, _ = run_dry(generate_embeddings, company_ids=ids, database=database_name)

    assert row_counts(db) == before
    assert set(requests_received(sandbox).values()) == {0}
    assert (scoring.count, scoring.invalid_input, scoring.provider_calls) == (6, 1, 50)
    assert scoring.estimated_cost_nanousd > 0 and scoring.expected_seconds > 0
    assert scoring.estimated_cost_usd == pytest.approx(scoring.estimated_cost_nanousd / 1e9)
    # the cheap tier asks each valid company once; a share of them (assumed, or learned from earlier tiered
    # scorings of this session) goes on to ten premium calls each
    assert 5 < tiered.provider_calls < 5 + 50
    assert 0 < tiered.estimated_cost_nanousd < scoring.estimated_cost_nanousd
    assert any("of the companies at tier 1 go up to tier 2" in a for a in tiered.assumptions)
    assert (enrichment.provider_calls, enrichment.estimated_cost_nanousd) == (5, 5 * DEFAULT_PRICES.run_cost("base"))
    assert (embeddings.provider_calls, embeddings.invalid_input, embeddings.estimated_cost_nanousd) == (1, 0, 0)
    for line in ("| provider calls | 50 |", "| failing input checks (no call, no cost) | 1 |", "expected duration"):
        assert line in markdown
    assert "### Assumptions" in markdown and "tag:groq-estimates allows 2 batches in flight" in markdown
    assert any(
        "dry run: score_llm_adoption would run on 6 companies (~0 skipped, ~1 failing input checks): ~50 provider "
        "calls" in r.getMessage()
        for r in caplog.records
    )


def test_a_groq_estimate_is_within_a_quarter_of_what_the_run_then_spends(
    sandbox: SandboxServer, providers: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    db = load_database("default")
    history = seed(db, 3, seed_value=7802)  # one small earlier run gives the ledger its history of this model
    first = score_llm_adoption(company_ids=history, provider=providers["groq"])
    assert isinstance(first, BulkActionSummary) and first.succeeded == 3
    ids = seed(db, 8, seed_value=7803)
    set_website(db, ids[0], None)
    selection = [history[0], *ids]  # one company already scored: skipped
    received = requests_received(sandbox)

    report, _ = run_dry(score_llm_adoption, company_ids=selection, provider=providers["groq"])

    assert requests_received(sandbox) == received
    assert any("input tokens per byte (ledger:" in a for a in report.assumptions)
    assert any("output tokens per call (ledger average)" in a for a in report.assumptions)

    summary = score_llm_adoption(company_ids=selection, provider=providers["groq"])

    assert isinstance(summary, BulkActionSummary)
    assert (
        (report.skipped, report.invalid_input, report.provider_calls)
        == (
            summary.skipped,
            summary.invalid_input,
            summary.provider_calls,
        )
        == (1, 1, 70)
    )
    with db.read_session() as session:
        spent = action_spend(session, summary.bulk_action_id)
    ratio = report.estimated_cost_nanousd / spent
    with capsys.disabled():
        print(f"\nGROQ scoring estimate {report.estimated_cost_nanousd} / actual {spent} nano-USD = {ratio:.3f}")
    assert 0.8 <= ratio <= 1.25


def test_an_enrichment_estimate_is_what_the_provider_then_bills(
    sandbox: SandboxServer, providers: dict[str, str]
) -> None:
    db = load_database("default")
    ids = seed(db, 7, seed_value=7804)
    set_website(db, ids[3], "http://127.0.0.1/admin")

    report, _ = run_dry(enrich_companies, company_ids=ids, provider=providers["parallel"])

    assert (report.provider_calls, report.invalid_input, report.skipped) == (6, 1, 0)
    assert report.estimated_cost_nanousd == 6 * DEFAULT_PRICES.run_cost("base")
    # two units of 5 side by side on 2 slots: one round of one base run, plus the engine's two batches
    assert report.expected_seconds == pytest.approx(PARALLEL_RUN_SECONDS["base"], abs=0.1)
    assert requests_received(sandbox)["parallel"] == 0

    summary = enrich_companies(company_ids=ids, provider=providers["parallel"])

    assert isinstance(summary, BulkActionSummary) and (summary.succeeded, summary.invalid_input) == (6, 1)
    billed = sandbox.stats(log=False)["providers"]["parallel"]
    assert billed["billed_calls"] == report.provider_calls
    assert billed["list_price_nanousd"] == report.estimated_cost_nanousd


def test_a_local_embedding_estimate_skips_current_vectors_and_costs_nothing() -> None:
    db = load_database("default")
    ids = seed(db, 25, seed_value=7805)
    first = generate_embeddings(company_ids=ids[:10])
    assert isinstance(first, BulkActionSummary) and first.succeeded == 10
    before = row_counts(db)

    report, markdown = run_dry(generate_embeddings, company_ids=ids)

    assert row_counts(db) == before
    assert (report.count, report.skipped, report.provider_calls, report.estimated_cost_nanousd) == (25, 10, 2, 0)
    assert "| estimated cost | $0.000000 |" in markdown
    summary = generate_embeddings(company_ids=ids)
    assert isinstance(summary, BulkActionSummary)
    assert (summary.skipped, summary.succeeded, summary.provider_calls) == (10, 15, report.provider_calls)


def test_a_workers_ai_estimate_reads_its_tokens_from_the_ledger(
    sandbox: SandboxServer, providers: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    db = load_database("default")
    first = generate_embeddings(company_ids=seed(db, 10, seed_value=7806), provider=providers["workers-ai"])
    assert isinstance(first, BulkActionSummary) and first.succeeded == 10
    ids = seed(db, 20, seed_value=7807)

    report, _ = run_dry(generate_embeddings, company_ids=ids, provider=providers["workers-ai"])

    assert any("input tokens per byte (ledger:" in a for a in report.assumptions)
    summary = generate_embeddings(company_ids=ids, provider=providers["workers-ai"])
    assert isinstance(summary, BulkActionSummary) and summary.succeeded == 20
    assert report.provider_calls == summary.provider_calls == 2
    with db.read_session() as session:
        spent = action_spend(session, summary.bulk_action_id)
    ratio = report.estimated_cost_nanousd / spent
    with capsys.disabled():
        print(f"\nWorkers AI estimate {report.estimated_cost_nanousd} / actual {spent} nano-USD = {ratio:.3f}")
    assert 0.8 <= ratio <= 1.25
