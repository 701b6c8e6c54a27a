"""LLM reclassify end to end on the sandbox's Anthropic Message Batches (real SDK, real HTTP, real database).

The sandbox's batches take several polls, return their lines in an order unrelated to the requests, and can be
made to error, cancel or expire items and to answer outside the taxonomy (``invalid_output``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from sqlalchemy import func, select, update

from blocks.database import CompanyDatabase
from blocks.llm import AnthropicLLM
from blocks.loading import clear_block_cache
from core.message_batch_tables import MessageBatch, MessageBatchResult, MessageBatchStatus
from core.reclassify_llm import custom_id
from core.schema import BulkActionOutcome, BulkActionStatus, Company, CompanyHistory, DeadJob, OutcomeStatus, SpendEntry
from core.taxonomy import TAXONOMY_VERSION, check_classification
from deployments.provision_limits import provision_limits
from flows.reclassify import reclassify
from sandbox.server import SandboxServer
from tests.helpers import bulk_action, seed

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
        api_key="sk-ant-reclassify-secret-0123456789",
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
        batches = session.scalars(select(MessageBatch).where(MessageBatch.bulk_action_id == summary.bulk_action_id)).all()
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
