"""LLM reclassify's dry run: who it would skip or refuse, its Message Batches requests, their cost, and its hour.

Real flow runs on the session's Prefect server, Anthropic at the sandbox over real HTTP.  "Nothing written" is
counted in every table the action writes (message batch rows included) and in the classification columns;
"nothing sent" is the sandbox's own count of requests received.  Each estimate is then compared with the real run
of the same selection that follows: its skips and calls with the run's summary, its cost with the spend ledger.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
from prefect.states import State
from sqlalchemy import func, select, update

from blocks.database import CompanyDatabase
from blocks.llm import AnthropicLLM
from blocks.loading import clear_block_cache, load_database
from core.classify_prompt import CompanyText
from core.classify_rules import input_text_sha256
from core.estimate_model import Slots
from core.estimate_reclassify import (
    MESSAGE_BATCH_TYPICAL_SECONDS,
    SUBMIT_SECONDS,
    ClassifySample,
    estimate_reclassify_llm,
)
from core.message_batch_tables import MessageBatch, MessageBatchResult
from core.pricing import DEFAULT_PRICES
from core.reclassify import ClassifyInput
from core.reclassify_llm import LLMOptions
from core.schema import (
    BulkAction,
    BulkActionOutcome,
    Company,
    CompanyHistory,
    CompanyStatus,
    DeadJob,
    OutcomeStatus,
    SpendAccount,
    SpendEntry,
    SpendReservation,
)
from core.spend import action_spend
from core.taxonomy import TAXONOMY_VERSION
from deployments.provision_limits import provision_limits
from flows.engine import BulkActionSummary, DryRunReport
from flows.reclassify import reclassify
from sandbox.server import SandboxServer
from tests.helpers import seed

TAG = "anthropic-reclassify-estimates"
#: the block's model (test_reclassify_llm classifies with it too)
MODEL = "claude-haiku-4-5"
#: the accuracy tests' model, used by no other test: its ledger history is only what these tests give it
MEASURED_MODEL = "claude-opus-4-1"
WRITTEN_TABLES = (
    BulkAction,
    BulkActionOutcome,
    SpendEntry,
    SpendAccount,
    SpendReservation,
    CompanyHistory,
    DeadJob,
    MessageBatch,
    MessageBatchResult,
)


@pytest.fixture
def sandbox(provider_sandbox: SandboxServer) -> Iterator[SandboxServer]:
    provider_sandbox.reset(config=True)
    provider_sandbox.configure("anthropic", job_duration_s=0.3)
    yield provider_sandbox
    provider_sandbox.reset(config=True)


@pytest.fixture(scope="module")
def anthropic_block(provider_sandbox: SandboxServer) -> str:
    provision_limits({TAG: 2})
    AnthropicLLM(
        api_key="fake-anthropic-estimates-secret-0123456789-not-real",  # type: ignore[arg-type]
        base_url=provider_sandbox.url,
        model=MODEL,
        timeout_seconds=2.0,
        concurrency_tag=TAG,
    ).save("reclassify-estimates", overwrite=True)
    clear_block_cache()
    return "anthropic-llm/reclassify-estimates"


def llm(ids: list[int], provider: str, database: str = "default", **options: Any) -> Any:
    return reclassify(company_ids=ids, mode="llm", provider=provider, database=database, poll_seconds=0.2, **options)


def run_dry(ids: list[int], provider: str, database: str = "default", **options: Any) -> tuple[DryRunReport, str]:
    """A dry run's report and the markdown of its artifact."""
    state: State[Any] = reclassify(
        company_ids=ids, mode="llm", provider=provider, database=database, dry_run=True, return_state=True, **options
    )
    report = state.result()
    assert isinstance(report, DryRunReport)
    with get_client(sync_client=True) as client:
        [artifact] = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id]))
        )
    return report, str(artifact.data)


def written(db: CompanyDatabase) -> dict[str, Any]:
    """Row counts of every table an LLM reclassify writes, and every company's classification columns."""
    with db.read_session() as session:
        counts = {t.__tablename__: session.scalar(select(func.count()).select_from(t)) for t in WRITTEN_TABLES}
        columns = session.execute(
            select(Company.id, Company.sector, Company.taxonomy_version, Company.classification_input_sha256).order_by(
                Company.id
            )
        ).all()
    return {"counts": counts, "classifications": [tuple(row) for row in columns]}


def anthropic_requests(sandbox: SandboxServer) -> int:
    return int(sandbox.stats(log=False)["providers"]["anthropic"]["received"])


def ratio_of(report: DryRunReport, summary: BulkActionSummary, db: CompanyDatabase) -> float:
    with db.read_session() as session:
        spent = action_spend(session, summary.bulk_action_id)
    assert spent > 0
    return report.estimated_cost_nanousd / spent


def test_a_dry_run_counts_skips_refusals_and_requests_and_writes_or_sends_nothing(
    db: CompanyDatabase,
    database_name: str,
    sandbox: SandboxServer,
    anthropic_block: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    ids = seed(db, 12, 2201)
    local = reclassify(company_ids=ids[:3], database=database_name)  # three companies classified and current
    assert isinstance(local, BulkActionSummary) and local.succeeded == 3
    with db.session() as session:
        session.execute(update(Company).where(Company.id == ids[3]).values(status=CompanyStatus.MERGED))
        session.execute(
            update(Company)
            .where(Company.id == ids[4])
            .values(name="", nace_code=None, industry=None, activity_description=None)
        )
    before, received = written(db), anthropic_requests(sandbox)

    report, markdown = run_dry(ids, anthropic_block, database_name)
    forced, _ = run_dry(ids, anthropic_block, database_name, force=True)

    assert written(db) == before
    assert anthropic_requests(sandbox) == received == 0
    # current (3) and merged (1) companies are skipped, the one with no text refused; one request for each other
    assert (report.count, report.skipped, report.invalid_input, report.provider_calls) == (12, 4, 1, 7)
    assert (forced.skipped, forced.invalid_input, forced.provider_calls) == (1, 1, 10)
    assert 0 < report.estimated_cost_nanousd < forced.estimated_cost_nanousd
    assert report.expected_seconds >= MESSAGE_BATCH_TYPICAL_SECONDS
    assert any("in 1 sub-batch of at most 100" in a for a in report.assumptions)
    assert any("Message Batches price" in a for a in report.assumptions)
    assert any("most batches finish within an hour" in a for a in report.assumptions)
    assert any("force=true sends them too" in a for a in report.assumptions)
    for line in ("| provider calls | 7 |", "| skipped (results already current) | 4 |", "expected duration"):
        assert line in markdown
    assert any(
        "dry run: reclassify would run on 12 companies (~4 skipped, ~1 failing input checks): ~7 provider calls"
        in r.getMessage()
        for r in caplog.records
    )

    summary = llm(ids, anthropic_block, database_name)

    assert isinstance(summary, BulkActionSummary)
    assert (summary.skipped, summary.provider_calls, summary.succeeded) == (4, 7, 7)
    # LLM mode settles a company with nothing to classify from as a failed outcome of invalid input, no request
    with db.read_session() as session:
        refused = session.scalars(
            select(BulkActionOutcome.company_id).where(
                BulkActionOutcome.bulk_action_id == summary.bulk_action_id,
                BulkActionOutcome.status == OutcomeStatus.FAILED,
                BulkActionOutcome.detail.startswith("invalid input"),
            )
        ).all()
    assert list(refused) == [ids[4]] and summary.failed == summary.invalid_input == report.invalid_input
    with db.read_session() as session:
        flagged = session.scalar(select(Company.needs_review).where(Company.id == ids[4]))
    assert flagged is True  # refused invalid input is flagged for review, as the engine does


def test_an_llm_reclassify_estimate_is_within_a_quarter_of_what_the_run_then_spends(
    sandbox: SandboxServer, anthropic_block: str, capsys: pytest.CaptureFixture[str]
) -> None:
    db = load_database("default")
    earlier = seed(db, 12, 2202)
    ids = seed(db, 40, 2203)
    blind, _ = run_dry(ids, anthropic_block, model=MEASURED_MODEL)  # no history of this model yet
    first = llm(earlier, anthropic_block, model=MEASURED_MODEL)  # the ledger's history of the model
    assert isinstance(first, BulkActionSummary) and first.succeeded == 12
    received = anthropic_requests(sandbox)

    report, _ = run_dry(ids, anthropic_block, model=MEASURED_MODEL)

    assert anthropic_requests(sandbox) == received
    assert any("1 token per 4 input bytes (no ledger history)" in a for a in blind.assumptions)
    assert any("earlier reclassify requests, their prompts rebuilt" in a for a in report.assumptions)
    assert any("ledger average of 12" in a for a in report.assumptions)

    summary = llm(ids, anthropic_block, model=MEASURED_MODEL)

    assert isinstance(summary, BulkActionSummary) and summary.succeeded == 40
    assert (report.skipped, report.invalid_input, report.provider_calls) == (0, 0, summary.provider_calls) == (0, 0, 40)
    ratio, blind_ratio = ratio_of(report, summary, db), ratio_of(blind, summary, db)
    with capsys.disabled():
        print(f"\nLLM reclassify estimate / actual: {ratio:.3f} with ledger history, {blind_ratio:.3f} without")
    assert 0.75 <= ratio <= 1.25


def test_web_search_raises_the_estimate_by_the_search_fee(
    sandbox: SandboxServer, anthropic_block: str, capsys: pytest.CaptureFixture[str]
) -> None:
    db = load_database("default")
    earlier = llm(seed(db, 6, 2206), anthropic_block, model=MEASURED_MODEL)  # tokens learned, whatever ran before
    assert isinstance(earlier, BulkActionSummary) and earlier.succeeded == 6
    ids = seed(db, 20, 2204)
    fee = DEFAULT_PRICES.web_search_cost("anthropic", 1)

    plain, _ = run_dry(ids, anthropic_block, model=MEASURED_MODEL)
    searched, _ = run_dry(ids, anthropic_block, model=MEASURED_MODEL, web_search=True)

    assert searched.provider_calls == plain.provider_calls == 20
    # no earlier web search reclassify of this model: one search per request, nothing more
    assert searched.estimated_cost_nanousd - plain.estimated_cost_nanousd == 20 * fee
    assert any("1 search per request (assumed" in a for a in searched.assumptions)

    summary = llm(ids, anthropic_block, model=MEASURED_MODEL, web_search=True)

    assert isinstance(summary, BulkActionSummary) and summary.succeeded == 20
    ratio = ratio_of(searched, summary, db)
    with capsys.disabled():
        print(f"\nLLM reclassify with web search, estimate / actual: {ratio:.3f}")
    assert 0.75 <= ratio <= 1.25
    # the next estimate learns the searches per request (and the tokens their results add) from that run
    more = seed(db, 10, 2205)
    learned, _ = run_dry(more, anthropic_block, model=MEASURED_MODEL, web_search=True)
    assert any("1.00 searches per request" in a and "(ledger: 20 earlier web search" in a for a in learned.assumptions)
    unsearched, _ = run_dry(more, anthropic_block, model=MEASURED_MODEL)
    assert learned.estimated_cost_nanousd - unsearched.estimated_cost_nanousd == pytest.approx(10 * fee, rel=0.01)


def test_a_sampled_selection_is_scaled_and_its_sub_batches_are_the_windows_with_work() -> None:
    """The arithmetic alone (no flow): 200 sampled companies stand for 10,000."""

    def company(cid: int, *, current: bool = False, empty: bool = False) -> ClassifySample:
        name, industry = ("", None) if empty else (f"Company {cid}", "Software publishing")
        digest = input_text_sha256(None, industry, None, name) if current else None
        row = ClassifyInput(cid, name, industry, None, None, None, None, None, TAXONOMY_VERSION, digest)
        return ClassifySample(row, CompanyText(name, None, industry, None, None), CompanyStatus.ACTIVE)

    sample = [company(i, current=i % 4 == 0, empty=i % 20 == 1) for i in range(200)]
    options = LLMOptions(model=MODEL, max_tokens=200)
    slots = Slots(TAG, 2)

    estimate = estimate_reclassify_llm(10_000, sample, options, DEFAULT_PRICES, slots)
    forced = estimate_reclassify_llm(10_000, sample, options, DEFAULT_PRICES, slots, force=True)

    assert (estimate.skipped, estimate.invalid_input, estimate.provider_calls) == (2_500, 500, 7_000)
    assert (forced.skipped, forced.invalid_input, forced.provider_calls) == (0, 500, 9_500)
    # 100 windows of 100 selected companies, each with eligible ones: 100 POSTs
    assert any("in 100 sub-batches of at most 100" in a for a in estimate.assumptions)
    per_request = DEFAULT_PRICES.llm_cost("anthropic", MODEL, 1, 1, batch=True)
    assert estimate.estimated_cost_nanousd > 7_000 * per_request
    assert forced.estimated_cost_nanousd == pytest.approx(estimate.estimated_cost_nanousd * 9_500 / 7_000, rel=0.01)
    assert estimate.expected_seconds == MESSAGE_BATCH_TYPICAL_SECONDS + 100 * SUBMIT_SECONDS + 300
