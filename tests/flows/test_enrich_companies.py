"""enrich_companies end to end: real flow runs on the session's Prefect server, Parallel runs at the sandbox.

Runs last 0.2 s at the sandbox; what the provider was asked is counted where it lands (the sandbox), files are
read back from the storage block, columns from the company database.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from prefect import flow
from prefect.filesystems import LocalFileSystem
from sqlalchemy import select, update

from blocks.database import CompanyDatabase
from blocks.enrichment import ParallelEnrichment
from blocks.loading import clear_block_cache, load_database
from blocks.storage import DEFAULT_STORAGE, load_storage, read_json, write_json
from core.errors import ConfigurationError
from core.schema import BulkActionOutcome, Company, EnrichmentStatus, OutcomeStatus
from core.store import CompanyResult, create_bulk_action
from deployments.provision_limits import provision_limits
from flows.engine import BulkActionSummary
from flows.enrich_companies import enrich_companies
from sandbox.server import SandboxServer
from tasks.batch import BatchContext
from tasks.enrichment import enrich_batch
from tests.helpers import dead_jobs, seed

API_KEY = "par-flow-secret-0123456789"
TAG = "parallel-flow-test"
BATCHES_IN_FLIGHT = 2
ACTIVE_RUN_CAP = BATCHES_IN_FLIGHT * 5  # the sizing rule: batches in flight x 5 runs each


@pytest.fixture(scope="module")
def storage_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("enrichment-storage")


@pytest.fixture(scope="module")
def provider(provider_sandbox: SandboxServer, storage_dir: Path) -> str:
    """A parallel-enrichment block on the sandbox, writing to a local storage block of its own."""
    provision_limits({TAG: BATCHES_IN_FLIGHT})
    LocalFileSystem(basepath=str(storage_dir)).save("enrichment-test", overwrite=True)
    ParallelEnrichment(
        api_key=API_KEY,  # type: ignore[arg-type]
        base_url=provider_sandbox.url,
        poll_slice_seconds=5,
        request_timeout_seconds=5,
        concurrency_tag=TAG,
        storage_block="local-file-system/enrichment-test",
    ).save("sandbox", overwrite=True)
    clear_block_cache()
    return "parallel-enrichment/sandbox"


@pytest.fixture
def sandbox(provider_sandbox: SandboxServer) -> Iterator[SandboxServer]:
    provider_sandbox.reset(config=True)
    provider_sandbox.configure("parallel", job_duration_s=0.2, max_concurrency=ACTIVE_RUN_CAP)
    yield provider_sandbox
    provider_sandbox.reset(config=True)


def runs_created(sandbox: SandboxServer) -> int:
    return int(sandbox.stats(log=False)["providers"]["parallel"]["runs_created"])


def companies(db: CompanyDatabase, ids: list[int]) -> dict[int, Company]:
    with db.session() as session:
        rows = {c.id: c for c in session.scalars(select(Company).where(Company.id.in_(ids)))}
        session.expunge_all()
        return rows


def read(storage_dir: Path, company_id: int, name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((storage_dir / "companies" / str(company_id) / name).read_text("utf-8"))
    return data


def test_enriches_companies_stores_their_files_and_a_rerun_pays_nothing(
    sandbox: SandboxServer, provider: str, storage_dir: Path
) -> None:
    db = load_database("default")
    ids = seed(db, 15, seed_value=3001)
    before = companies(db, ids)

    summary = enrich_companies(company_ids=ids, provider=provider)

    assert isinstance(summary, BulkActionSummary)
    assert (summary.status, summary.succeeded, summary.failed, summary.batches) == ("completed", 15, 0, 3)
    assert summary.provider_calls == 15 and runs_created(sandbox) == 15
    parallel = sandbox.stats(log=False)["providers"]["parallel"]
    assert parallel["peak_active_runs"] <= ACTIVE_RUN_CAP and parallel["rate_limited"] == 0
    after = companies(db, ids)
    for cid in ids:
        raw = read(storage_dir, cid, "parallel-scrape.json")
        profile = read(storage_dir, cid, "profile.json")
        content = raw["output"]["content"]
        assert raw["run"]["status"] == "completed"
        assert raw["run"]["metadata"] == {"company_id": str(cid), "bulk_action_id": str(summary.bulk_action_id)}
        assert (profile["id"], profile["name"], profile["website"]) == (cid, before[cid].name, before[cid].website)
        assert profile["products"] == content["products"] and profile["contacts"] == content["contacts"]
        assert profile["ownership"] == {"type": content["ownership_type"], "owners": content["owner_names"]}
        assert profile["outreach_emails"]["nl"] == content["outreach_email_nl"]
        assert profile["source"] == {
            "provider": "parallel",
            "processor": "base",
            "run_id": raw["run"]["run_id"],
            "bulk_action_id": summary.bulk_action_id,
            "raw": f"companies/{cid}/parallel-scrape.json",
        }
        company = after[cid]
        assert company.enrichment_status is EnrichmentStatus.ENRICHED
        assert company.activity_description == content["activity_description"] == profile["activity_description"]
        assert company.ownership_type == "family-owned"  # the sandbox picks the schema enum's first label
        assert company.enriched_at is not None
        assert datetime.fromisoformat(profile["enriched_at"]) == company.enriched_at
    assert not any(API_KEY in p.read_text("utf-8") for p in storage_dir.rglob("*.json"))

    rerun = enrich_companies(bulk_action_id=summary.bulk_action_id, provider=provider)

    assert isinstance(rerun, BulkActionSummary)
    assert rerun.batches_from_checkpoint == 3
    assert runs_created(sandbox) == 15  # counted at the provider: not one run created again


def test_a_poison_company_fails_permanently_and_its_batch_mates_succeed(
    sandbox: SandboxServer, provider: str, storage_dir: Path
) -> None:
    db = load_database("default")
    ids = seed(db, 5, seed_value=3101)
    poison, flaky = ids[1], ids[3]
    with db.session() as session:
        session.execute(update(Company).where(Company.id == poison).values(website="https://poison-pill.example"))
        session.execute(update(Company).where(Company.id == flaky).values(website="https://flaky-host.example"))
    sandbox.configure(
        "parallel",
        faults=[
            {"kind": "fail_run", "match": "poison-pill.example"},
            {"kind": "5xx", "status": 503, "match": "flaky-host.example", "endpoint": "create_run"},
        ],
    )

    summary = enrich_companies(company_ids=ids, provider=provider)

    assert isinstance(summary, BulkActionSummary)
    assert (summary.status, summary.succeeded, summary.failed) == ("completed", 3, 2)
    dead = {d.company_id: d for d in dead_jobs(db, summary.bulk_action_id)}
    assert set(dead) == {poison, flaky}
    assert dead[poison].error_class == "TaskRunFailedError" and dead[poison].retryable is False
    assert "Sandbox injected run failure" in dead[poison].error_message and dead[poison].attempts == 1
    assert dead[flaky].error_class == "ProviderServerError" and dead[flaky].retryable is True
    assert dead[flaky].attempts == 3  # the create and its two retries; never retried as a whole batch
    assert all(API_KEY not in d.error_message for d in dead.values())

    rows = companies(db, ids)
    assert rows[poison].enrichment_status is EnrichmentStatus.FAILED_PERMANENT and rows[poison].enriched_at is None
    assert rows[flaky].enrichment_status is EnrichmentStatus.FAILED_RETRYABLE
    mates = [cid for cid in ids if cid not in (poison, flaky)]
    assert all(rows[cid].enrichment_status is EnrichmentStatus.ENRICHED for cid in mates)
    assert runs_created(sandbox) == 4  # the batch-mates' runs were created once: nobody paid twice
    assert (storage_dir / "companies" / str(poison) / "parallel-run.json").exists()
    assert not (storage_dir / "companies" / str(poison) / "profile.json").exists()
    with db.session() as session:
        outcome = session.get(BulkActionOutcome, (summary.bulk_action_id, poison))
        assert outcome is not None and outcome.status is OutcomeStatus.FAILED


@flow
def run_handler(provider: str, bulk_action_id: int, company_ids: list[int]) -> tuple[list[CompanyResult], int]:
    """The batch handler alone, as ``process_batch`` calls it (a retried batch calls it again)."""
    ctx = BatchContext("enrich_companies", bulk_action_id, load_database("default"), provider, {})
    return enrich_batch(ctx, company_ids), ctx.provider_calls


def new_action(db: CompanyDatabase, ids: list[int]) -> int:
    """A bulk action record for a handler called directly (its runs are metered against the action)."""
    with db.session() as session:
        return create_bulk_action(session, action="enrich_companies", company_ids=ids, created_by="tests").id


def test_a_retried_batch_waits_on_the_runs_it_already_paid_for(sandbox: SandboxServer, provider: str) -> None:
    db = load_database("default")
    ids = seed(db, 5, seed_value=3201)
    action, other_action = new_action(db, ids), new_action(db, ids)

    first, first_calls = run_handler(provider, action, ids)
    again, again_calls = run_handler(provider, action, ids)  # same bulk action: the journaled runs are reused
    other, other_calls = run_handler(provider, other_action, ids)  # a new bulk action researches afresh

    assert [r.status for r in first + again + other] == [OutcomeStatus.SUCCEEDED] * 15
    assert [r.detail for r in again] == [r.detail for r in first]  # "run <id>": the very same runs
    assert (first_calls, again_calls, other_calls) == (5, 0, 5) and runs_created(sandbox) == 10

    sandbox.reset()  # the provider forgets the runs: a journaled run now answers 404
    gone, gone_calls = run_handler(provider, other_action, ids)
    assert [r.status for r in gone] == [OutcomeStatus.SUCCEEDED] * 5 and gone_calls == 5


def test_storage_round_trips_json_and_falls_back_to_the_local_default(session_dir: Path) -> None:
    assert read_json(DEFAULT_STORAGE, "companies/0/nothing.json") is None
    where = write_json(DEFAULT_STORAGE, "companies/0/probe.json", {"naïve": "café", "n": 1})
    assert Path(where) == session_dir / "home" / "storage" / "companies" / "0" / "probe.json"
    assert read_json(DEFAULT_STORAGE, "companies/0/probe.json") == {"naïve": "café", "n": 1}
    with pytest.raises(ConfigurationError, match="no local-file-system block named"):
        load_storage("local-file-system/never-saved")
    with pytest.raises(ConfigurationError, match="filesystem block"):
        load_storage("company-database/default")
