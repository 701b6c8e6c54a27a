"""Spend on the two non-LLM price paths, checked against what the provider would bill (the sandbox's list price).

Parallel bills a completed task run at its processor's price and nothing for a failed one; Workers AI bills input
tokens at $0.02 per million; an OpenAI-compatible endpoint bills the tokens it reports at the model's price.  The
ledger (``core.spend``) must equal the sandbox's ``list_price_nanousd`` to the nano-dollar, a budget must pause
an action before the provider's bill passes it, and the local model must never reach the meter.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

import httpx
import numpy as np
import pytest
from prefect import flow
from prefect.filesystems import LocalFileSystem
from sqlalchemy import func, select, update

from blocks.database import CompanyDatabase
from blocks.embeddings import OpenAICompatibleEmbeddings, WorkersAIEmbeddings
from blocks.enrichment import ParallelEnrichment
from blocks.loading import clear_block_cache, load_database
from core.errors import InvalidProviderOutputError
from core.pricing import DEFAULT_PRICES, usd_to_nano
from core.schema import (
    BulkAction,
    BulkActionOutcome,
    BulkActionStatus,
    Company,
    CompanyEmbedding,
    EnrichmentStatus,
    OutcomeStatus,
    SpendEntry,
    SpendReservation,
)
from core.spend import account_state, action_account, action_spend
from core.store import CompanyResult, create_bulk_action, find_bulk_action_by_flow_run
from deployments.provision_limits import provision_limits
from flows.engine import BulkActionSummary
from flows.enrich_companies import enrich_companies
from flows.generate_embeddings import generate_embeddings
from providers.embeddings import (
    BGE_MAX_TOKENS_PER_TEXT,
    EmbeddingUsage,
    OpenAICompatibleEmbeddingClient,
    WorkersAIEmbeddingClient,
    worst_case_tokens,
)
from providers.http import RetryPolicy
from sandbox.generate import count_tokens
from sandbox.server import SandboxServer
from tasks.batch import BatchContext
from tasks.embeddings import split_exactly
from tasks.enrichment import enrich_batch
from tasks.metering import Meter
from tests.helpers import dead_jobs, seed

TAG = "parallel-spend-test"
BASE_RUN = 10_000_000  # $0.010, Parallel's base processor, in nano-dollars
WORKERS_TOKEN = 20  # $0.02 per million tokens
BGE = "@cf/baai/bge-small-en-v1.5"
OPENAI_MODEL = "text-embedding-3-small"


@pytest.fixture(scope="module")
def parallel(provider_sandbox: SandboxServer, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A parallel-enrichment block on the sandbox (two batches in flight), with a storage block of its own."""
    provision_limits({TAG: 2})
    storage = tmp_path_factory.mktemp("spend-storage")
    LocalFileSystem(basepath=str(storage)).save("spend-test", overwrite=True)
    ParallelEnrichment(
        api_key="par-spend-key",  # type: ignore[arg-type]
        base_url=provider_sandbox.url,
        poll_slice_seconds=5,
        request_timeout_seconds=5,
        concurrency_tag=TAG,
        storage_block="local-file-system/spend-test",
    ).save("spend", overwrite=True)
    clear_block_cache()
    return "parallel-enrichment/spend"


@pytest.fixture(scope="module")
def embedders(provider_sandbox: SandboxServer) -> dict[str, str]:
    WorkersAIEmbeddings(account_id="acct-spend", api_token="cf-spend", base_url=provider_sandbox.url).save(  # type: ignore[arg-type]
        "spend", overwrite=True
    )
    OpenAICompatibleEmbeddings(
        base_url=f"{provider_sandbox.url}/v1",
        api_key="sk-spend",  # type: ignore[arg-type]
        model=OPENAI_MODEL,
    ).save("spend", overwrite=True)
    clear_block_cache()
    return {"workers": "workers-ai-embeddings/spend", "openai": "openai-compatible-embeddings/spend"}


@pytest.fixture
def sandbox(provider_sandbox: SandboxServer) -> Iterator[SandboxServer]:
    provider_sandbox.reset(config=True)
    provider_sandbox.configure("parallel", job_duration_s=0.2, max_concurrency=10)
    yield provider_sandbox
    provider_sandbox.reset(config=True)


def bill(sandbox: SandboxServer, provider: str) -> dict[str, int]:
    snap = sandbox.stats(log=False)["providers"][provider]
    return {key: int(snap[key]) for key in ("billed_calls", "list_price_nanousd", "unpriced_calls")}


def ledger(db: CompanyDatabase, bulk_action_id: int) -> list[SpendEntry]:
    with db.session() as session:
        rows = list(session.scalars(select(SpendEntry).where(SpendEntry.bulk_action_id == bulk_action_id)))
        session.expunge_all()
        return rows


def spent(db: CompanyDatabase, bulk_action_id: int) -> int:
    with db.session() as session:
        return action_spend(session, bulk_action_id)


def assert_nothing_reserved(db: CompanyDatabase, bulk_action_id: int) -> None:
    """Every reservation was settled or given back: none left over, the action's account holds nothing."""
    with db.session() as session:
        left = session.scalar(select(func.count()).where(SpendReservation.bulk_action_id == bulk_action_id))
        account = account_state(session, action_account(bulk_action_id))
        assert left == 0 and account is not None and account.reserved_nanousd == 0
        assert account.spent_nanousd == action_spend(session, bulk_action_id)


# --- Parallel task runs ---------------------------------------------------------------------------------


def test_parallel_spend_is_the_list_price_of_the_completed_runs_and_a_rerun_adds_nothing(
    sandbox: SandboxServer, parallel: str
) -> None:
    db = load_database("default")
    ids = seed(db, 10, seed_value=7101)

    summary = enrich_companies(company_ids=ids, provider=parallel)

    assert isinstance(summary, BulkActionSummary)
    assert (summary.status, summary.succeeded, summary.failed) == ("completed", 10, 0)
    billed = bill(sandbox, "parallel")
    assert billed == {"billed_calls": 10, "list_price_nanousd": 10 * BASE_RUN, "unpriced_calls": 0}
    assert spent(db, summary.bulk_action_id) == billed["list_price_nanousd"]
    assert summary.spend_usd == pytest.approx(0.1)
    rows = ledger(db, summary.bulk_action_id)
    assert sorted(r.company_id or 0 for r in rows) == sorted(ids)
    assert {(r.provider, r.model, r.cost_nanousd, r.calls) for r in rows} == {
        ("parallel", "processor base", BASE_RUN, 1)
    }
    assert_nothing_reserved(db, summary.bulk_action_id)

    rerun = enrich_companies(bulk_action_id=summary.bulk_action_id, provider=parallel)

    assert isinstance(rerun, BulkActionSummary) and rerun.batches_from_checkpoint == rerun.batches
    assert spent(db, summary.bulk_action_id) == bill(sandbox, "parallel")["list_price_nanousd"] == 10 * BASE_RUN


def test_a_failed_run_costs_nothing_and_its_batch_mates_are_billed(sandbox: SandboxServer, parallel: str) -> None:
    db = load_database("default")
    ids = seed(db, 5, seed_value=7201)
    poison = ids[2]
    with db.session() as session:
        session.execute(update(Company).where(Company.id == poison).values(website="https://spend-poison.example"))
    sandbox.configure("parallel", faults=[{"kind": "fail_run", "match": "spend-poison.example"}])

    summary = enrich_companies(company_ids=ids, provider=parallel)

    assert isinstance(summary, BulkActionSummary)
    assert (summary.status, summary.succeeded, summary.failed) == ("completed", 4, 1)
    assert sandbox.stats(log=False)["providers"]["parallel"]["runs_created"] == 5
    billed = bill(sandbox, "parallel")
    assert billed["billed_calls"] == 4 and billed["list_price_nanousd"] == 4 * BASE_RUN
    assert spent(db, summary.bulk_action_id) == billed["list_price_nanousd"]
    assert sorted(r.company_id or 0 for r in ledger(db, summary.bulk_action_id)) == sorted(set(ids) - {poison})
    assert_nothing_reserved(db, summary.bulk_action_id)  # the failed run's reservation went back


@flow
def handler_run(provider: str, bulk_action_id: int, company_ids: list[int]) -> list[CompanyResult]:
    """The batch handler alone, as a retried batch of the same bulk action calls it again."""
    ctx = BatchContext("enrich_companies", bulk_action_id, load_database("default"), provider, {})
    return enrich_batch(ctx, company_ids)


def test_a_run_picked_up_from_the_journal_costs_nothing_again(sandbox: SandboxServer, parallel: str) -> None:
    db = load_database("default")
    ids = seed(db, 5, seed_value=7301)
    with db.session() as session:
        action = create_bulk_action(session, action="enrich_companies", company_ids=ids, created_by="tests").id

    first = handler_run(parallel, action, ids)
    assert spent(db, action) == bill(sandbox, "parallel")["list_price_nanousd"] == 5 * BASE_RUN

    again = handler_run(parallel, action, ids)  # waits on the journaled runs: free

    assert [r.detail for r in again] == [r.detail for r in first]
    assert spent(db, action) == 5 * BASE_RUN and bill(sandbox, "parallel")["billed_calls"] == 5

    sandbox.reset()  # the provider forgets the runs: the journaled ones answer 404 and are paid for afresh
    gone = handler_run(parallel, action, ids)

    assert [r.status for r in gone] == [OutcomeStatus.SUCCEEDED] * 5
    assert spent(db, action) == 5 * BASE_RUN + bill(sandbox, "parallel")["list_price_nanousd"] == 10 * BASE_RUN
    assert_nothing_reserved(db, action)


def test_a_budget_pauses_enrichment_part_way_and_the_provider_never_bills_past_it(
    sandbox: SandboxServer, parallel: str
) -> None:
    db = load_database("default")
    ids = seed(db, 15, seed_value=7401)
    budget = 0.07  # seven base runs of fifteen

    state = enrich_companies(company_ids=ids, provider=parallel, budget_usd=budget, return_state=True)

    assert state.is_completed()  # no deployment to suspend: the run ends, the action stays paused
    with db.session() as session:
        record = find_bulk_action_by_flow_run(session, str(state.state_details.flow_run_id))
        assert record is not None
        session.expunge(record)
        outcomes = dict(
            session.execute(
                select(BulkActionOutcome.company_id, BulkActionOutcome.status).where(
                    BulkActionOutcome.bulk_action_id == record.id
                )
            )
            .tuples()
            .all()
        )
        statuses = dict(
            session.execute(select(Company.id, Company.enrichment_status).where(Company.id.in_(ids))).tuples().all()
        )
    assert record.status is BulkActionStatus.PAUSED and "budget reached" in (record.status_reason or "")
    billed = bill(sandbox, "parallel")
    assert billed["list_price_nanousd"] <= usd_to_nano(budget)
    assert spent(db, record.id) == billed["list_price_nanousd"] == billed["billed_calls"] * BASE_RUN
    assert record.failed == 0 and not dead_jobs(db, record.id)
    done = [cid for cid, status in outcomes.items() if status is OutcomeStatus.SUCCEEDED]
    assert len(done) == billed["billed_calls"] and 0 < len(done) < len(ids)
    pending = [cid for cid, status in outcomes.items() if status is OutcomeStatus.PENDING]
    assert len(done) + len(pending) == len(ids)
    assert all(statuses[cid] is EnrichmentStatus.ENRICHED for cid in done)
    assert not any(
        statuses[cid] in (EnrichmentStatus.FAILED_PERMANENT, EnrichmentStatus.FAILED_RETRYABLE) for cid in pending
    )
    assert_nothing_reserved(db, record.id)

    resumed = enrich_companies(bulk_action_id=record.id, provider=parallel, budget_usd=1.0)

    assert isinstance(resumed, BulkActionSummary)
    assert (resumed.status, resumed.succeeded, resumed.failed) == ("completed", 15, 0)
    assert sandbox.stats(log=False)["providers"]["parallel"]["runs_created"] == 15  # nobody researched twice
    assert spent(db, record.id) == bill(sandbox, "parallel")["list_price_nanousd"] == 15 * BASE_RUN


# --- embeddings -------------------------------------------------------------------------------------------


def stored_texts(db: CompanyDatabase, ids: Sequence[int], model_id: str) -> dict[int, str]:
    with db.session() as session:
        return dict(
            session.execute(
                select(CompanyEmbedding.company_id, CompanyEmbedding.text).where(
                    CompanyEmbedding.company_id.in_(ids), CompanyEmbedding.model_id == model_id
                )
            )
            .tuples()
            .all()
        )


def test_workers_ai_spend_is_the_list_price_of_the_tokens_it_reported(
    sandbox: SandboxServer, embedders: dict[str, str]
) -> None:
    db = load_database("default")
    ids = seed(db, 23, seed_value=7501)  # calls of 10, 10 and 3 texts

    summary = generate_embeddings(company_ids=ids, provider=embedders["workers"])

    assert isinstance(summary, BulkActionSummary) and summary.succeeded == 23
    billed = bill(sandbox, "workers_ai")
    assert billed["billed_calls"] == 3 and billed["unpriced_calls"] == 0
    assert spent(db, summary.bulk_action_id) == billed["list_price_nanousd"] > 0
    rows = ledger(db, summary.bulk_action_id)
    assert sorted(r.company_id or 0 for r in rows) == sorted(ids)
    assert {(r.provider, r.model) for r in rows} == {("workers-ai", BGE)}
    assert sum(r.calls for r in rows) == 3  # one call per provider request, on the request's last company
    tokens = sum(count_tokens(text) for text in stored_texts(db, ids, f"{BGE}#cls").values())
    assert sum(r.input_tokens for r in rows) == tokens and billed["list_price_nanousd"] == tokens * WORKERS_TOKEN
    assert_nothing_reserved(db, summary.bulk_action_id)

    again = generate_embeddings(company_ids=ids, provider=embedders["workers"])  # unchanged texts: skipped

    assert isinstance(again, BulkActionSummary) and again.skipped == 23
    assert spent(db, again.bulk_action_id) == 0 and bill(sandbox, "workers_ai") == billed


def test_openai_compatible_embeddings_are_billed_by_reported_tokens_at_the_models_price(
    sandbox: SandboxServer, embedders: dict[str, str]
) -> None:
    db = load_database("default")
    ids = seed(db, 12, seed_value=7601)

    summary = generate_embeddings(company_ids=ids, provider=embedders["openai"])

    assert isinstance(summary, BulkActionSummary) and summary.succeeded == 12
    # the sandbox has no list price for OpenAI embedding models: it counts the calls as unpriced
    assert bill(sandbox, "openai") == {"billed_calls": 0, "list_price_nanousd": 0, "unpriced_calls": 2}
    tokens = sum(count_tokens(text) for text in stored_texts(db, ids, OPENAI_MODEL).values())
    expected = DEFAULT_PRICES.embedding_cost("openai", OPENAI_MODEL, tokens)  # genai-prices: $0.02 per million
    assert expected == tokens * 20
    assert spent(db, summary.bulk_action_id) == expected
    rows = ledger(db, summary.bulk_action_id)
    assert {(r.provider, r.model) for r in rows} == {("openai", OPENAI_MODEL)} and sum(r.calls for r in rows) == 2
    assert_nothing_reserved(db, summary.bulk_action_id)


def test_the_local_model_never_reaches_the_meter(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Meter:
        raise AssertionError("the local model must not build a meter")

    monkeypatch.setattr(Meter, "for_batch", classmethod(refuse))
    db = load_database("default")
    ids = seed(db, 12, seed_value=7701)

    summary = generate_embeddings(company_ids=ids)

    assert isinstance(summary, BulkActionSummary) and summary.succeeded == 12
    assert not ledger(db, summary.bulk_action_id) and spent(db, summary.bulk_action_id) == 0
    with db.session() as session:
        assert session.get(BulkAction, summary.bulk_action_id) is not None


# --- the embedding clients' usage, without a flow ------------------------------------------------------


def test_shares_are_proportional_and_sum_exactly() -> None:
    assert split_exactly(1000, [1, 1, 1]) == [333, 333, 334]
    assert split_exactly(7, [10, 30]) == [1, 6]
    assert split_exactly(0, [5, 5]) == [0, 0]
    assert split_exactly(5, [0, 0]) == [0, 5]
    for total in (1, 19, 20 * 137, 10**12 + 3):
        weights = [17, 1, 250, 3, 99]
        shares = split_exactly(total, weights)
        assert sum(shares) == total and all(s >= 0 for s in shares)


def workers_client(handler: Any) -> WorkersAIEmbeddingClient:
    http = httpx.Client(base_url="https://cf.test", transport=httpx.MockTransport(handler))
    return WorkersAIEmbeddingClient(http=http, account_id="a", retry=RetryPolicy(retries=2, initial_delay=0.0))


def vectors_for(request: httpx.Request, *, usage: bool, short: bool = False) -> dict[str, Any]:
    """A Workers AI answer; ``short``: one vector too few (an answer the client must reject)."""
    texts = json.loads(request.content)["text"]
    data = [list(np.eye(384, dtype=float)[i]) for i in range(len(texts) - int(short))]
    result: dict[str, Any] = {"shape": [len(texts), 384], "data": data, "pooling": "cls"}
    if usage:
        result["usage"] = {"prompt_tokens": 3 * len(texts), "total_tokens": 3 * len(texts)}
    return {"result": result, "success": True, "errors": [], "messages": []}


def test_workers_ai_reports_usage_or_estimates_the_bound() -> None:
    texts = ["Company: Acme. Industry: bakery.", "Company: Zeta. Location: NL.", "x" * 2000]
    reported = EmbeddingUsage()
    workers_client(lambda r: httpx.Response(200, json=vectors_for(r, usage=True))).embed_with_usage(texts, reported)
    assert (reported.input_tokens, reported.answers, reported.estimated_answers) == (9, 1, 0)

    estimated = EmbeddingUsage()
    workers_client(lambda r: httpx.Response(200, json=vectors_for(r, usage=False))).embed_with_usage(texts, estimated)
    bound = worst_case_tokens(texts, BGE_MAX_TOKENS_PER_TEXT)
    assert bound == len(texts[0]) + 2 + len(texts[1]) + 2 + BGE_MAX_TOKENS_PER_TEXT  # the long text is capped
    assert (estimated.input_tokens, estimated.answers, estimated.estimated_answers) == (bound, 1, 1)


def test_billed_answers_count_even_when_retried_or_rejected() -> None:
    texts = ["Company: Acme.", "Company: Zeta."]
    answers = iter(
        [
            httpx.Response(200, content=b'{"result": {"shape"'),  # a body cut in transit: billed, unreadable
            httpx.Response(503, json={"errors": [{"message": "busy"}]}),  # not billed
        ]
    )
    usage = EmbeddingUsage()

    def handler(request: httpx.Request) -> httpx.Response:
        return next(answers, None) or httpx.Response(200, json=vectors_for(request, usage=True))

    workers_client(handler).embed_with_usage(texts, usage)
    assert (usage.answers, usage.estimated_answers) == (2, 1)
    assert usage.input_tokens == worst_case_tokens(texts, BGE_MAX_TOKENS_PER_TEXT) + 6

    rejected = EmbeddingUsage()
    client = workers_client(lambda r: httpx.Response(200, json=vectors_for(r, usage=True, short=True)))
    with pytest.raises(InvalidProviderOutputError):
        client.embed_with_usage(texts, rejected)
    assert (rejected.input_tokens, rejected.answers) == (6, 1)  # the provider billed the unusable answer


def test_openai_compatible_client_reads_usage_prompt_tokens() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        data = [{"object": "embedding", "index": i, "embedding": [1.0, 0.0]} for i in range(2)]
        return httpx.Response(200, json={"data": data, "usage": {"prompt_tokens": 11, "total_tokens": 11}})

    http = httpx.Client(base_url="https://oai.test/v1/", transport=httpx.MockTransport(handler))
    client = OpenAICompatibleEmbeddingClient(http=http, model=OPENAI_MODEL)
    usage = EmbeddingUsage()
    assert client.embed_with_usage(["a", "b"], usage).shape == (2, 2)
    assert (usage.input_tokens, usage.answers, client.provider, client.max_tokens_per_text) == (11, 1, "openai", None)
