"""Never pay for garbage: hostile companies fail as invalid input without a provider call, flagged for review.

The providers are the sandbox over real HTTP, so "no call" is counted where calls land.  Each test runs on
SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.filesystems import LocalFileSystem
from sqlalchemy import select, update

from blocks.database import CompanyDatabase
from blocks.enrichment import ParallelEnrichment
from blocks.llm import GroqLLM
from blocks.loading import clear_block_cache
from core.schema import BulkActionOutcome, Company, OutcomeStatus
from deployments.provision_limits import provision_limits
from flows.engine import BulkActionSummary
from flows.enrich_companies import enrich_companies
from flows.generate_embeddings import generate_embeddings
from flows.score_llm_adoption import score_llm_adoption
from providers.pacing import window_limit_name
from sandbox.server import SandboxServer
from tests.helpers import dead_jobs, seed

#: website → what the reason must say; the last two are a valid site with a bad name, and no website at all
HOSTILE_WEBSITES: dict[str, str] = {
    "javascript:alert(1)": "not an http(s) URL",
    "file:///etc/passwd": "not an http(s) URL",
    "http://127.0.0.1:22": "loopback",
    "http://169.254.169.254/latest/meta-data": "link-local",
    "http://10.1.2.3/": "private",
    "": "no website",
}


@pytest.fixture(scope="module")
def providers(provider_sandbox: SandboxServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    storage: Path = tmp_path_factory.mktemp("invalid-input-storage")
    provision_limits({"parallel-invalid": 2, "groq-invalid": 2})
    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(window_limit_name("groq-invalid"), 6000)
    LocalFileSystem(basepath=str(storage)).save("invalid-input", overwrite=True)
    ParallelEnrichment(
        api_key="par-invalid-secret-0123456789",  # type: ignore[arg-type]
        base_url=provider_sandbox.url,
        poll_slice_seconds=5,
        concurrency_tag="parallel-invalid",
        storage_block="local-file-system/invalid-input",
    ).save("invalid-input", overwrite=True)
    GroqLLM(
        api_key="gsk-invalid-secret-0123456789",  # type: ignore[arg-type]
        base_url=f"{provider_sandbox.url}/openai/v1",
        requests_per_minute=6000,
        concurrency_tag="groq-invalid",
    ).save("invalid-input", overwrite=True)
    clear_block_cache()
    return {"enrich": "parallel-enrichment/invalid-input", "score": "groq-llm/invalid-input"}


@pytest.fixture
def sandbox(provider_sandbox: SandboxServer) -> Iterator[SandboxServer]:
    provider_sandbox.reset(config=True)
    provider_sandbox.configure("parallel", job_duration_s=0.1)
    yield provider_sandbox
    provider_sandbox.reset(config=True)


def hostile_companies(db: CompanyDatabase, seed_value: int) -> tuple[list[int], dict[int, str], list[int]]:
    """(all ids, hostile id → expected reason, valid ids): the hostile sites, an empty name, two valid ones."""
    ids = seed(db, len(HOSTILE_WEBSITES) + 3, seed_value=seed_value)
    hostile = dict(zip(ids, HOSTILE_WEBSITES.items(), strict=False))
    blank_name = ids[len(HOSTILE_WEBSITES)]
    with db.session() as session:
        for cid, (website, _) in hostile.items():
            session.execute(update(Company).where(Company.id == cid).values(website=website or None))
        session.execute(update(Company).where(Company.id == blank_name).values(name="  \t "))
    reasons = {cid: reason for cid, (_, reason) in hostile.items()} | {blank_name: "name is empty"}
    return ids, reasons, ids[len(HOSTILE_WEBSITES) + 1 :]


def assert_invalid_outcomes(db: CompanyDatabase, summary: Any, reasons: dict[int, str], valid: list[int]) -> None:
    assert isinstance(summary, BulkActionSummary)
    assert summary.invalid_input == len(reasons) and summary.failed == len(reasons)
    assert summary.succeeded == len(valid)
    jobs = {job.company_id: job for job in dead_jobs(db, summary.bulk_action_id)}
    assert set(jobs) == set(reasons)
    for cid, expected in reasons.items():
        job = jobs[cid]
        assert job.error_class == "InvalidInputError" and not job.retryable and job.attempts == 0
        assert expected in job.error_message and job.error_message.startswith("invalid input")
    with db.session() as session:
        flagged = dict(session.execute(select(Company.id, Company.review_reason).where(Company.needs_review)).all())
        statuses = dict(
            session.execute(
                select(BulkActionOutcome.company_id, BulkActionOutcome.status).where(
                    BulkActionOutcome.bulk_action_id == summary.bulk_action_id
                )
            ).all()
        )
    for cid, expected in reasons.items():
        assert expected in (flagged.get(cid) or ""), (cid, flagged.get(cid))
        assert statuses[cid] is OutcomeStatus.FAILED
    assert not set(valid) & set(flagged)
    assert all(statuses[cid] is OutcomeStatus.SUCCEEDED for cid in valid)


def test_enrichment_never_sends_a_hostile_company_to_the_provider(
    db: CompanyDatabase, database_name: str, sandbox: SandboxServer, providers: dict[str, str]
) -> None:
    ids, reasons, valid = hostile_companies(db, seed_value=8101)
    summary = enrich_companies(
        company_ids=ids, provider=providers["enrich"], database=database_name, failure_threshold=1.0
    )
    assert sandbox.stats(log=False)["providers"]["parallel"]["runs_created"] == len(valid)
    created = [r["match_key"] for r in sandbox.requests(provider="parallel") if r["endpoint"] == "create_run"]
    assert not [key for key in created for site in HOSTILE_WEBSITES if site and site in key]
    assert_invalid_outcomes(db, summary, reasons, valid)


def test_scoring_never_spends_a_call_on_a_hostile_company(
    db: CompanyDatabase, database_name: str, sandbox: SandboxServer, providers: dict[str, str]
) -> None:
    ids, reasons, valid = hostile_companies(db, seed_value=8202)
    summary = score_llm_adoption(
        company_ids=ids, provider=providers["score"], database=database_name, failure_threshold=1.0
    )
    assert sandbox.stats(log=False)["providers"]["groq"]["accepted"] == 10 * len(valid)
    assert_invalid_outcomes(db, summary, reasons, valid)


def test_embeddings_only_refuse_what_they_use(db: CompanyDatabase, database_name: str) -> None:
    """The embedding text has no website, so only the empty name is invalid input there."""
    ids, reasons, valid = hostile_companies(db, seed_value=8303)
    blank = next(cid for cid, reason in reasons.items() if reason == "name is empty")
    summary = generate_embeddings(company_ids=ids, database=database_name)
    assert isinstance(summary, BulkActionSummary)
    assert (summary.invalid_input, summary.failed, summary.succeeded) == (1, 1, len(ids) - 1)
    assert [job.company_id for job in dead_jobs(db, summary.bulk_action_id)] == [blank]
