"""generate_embeddings end to end on the local MiniLM model, as real flow runs on the session's Prefect server."""

from __future__ import annotations

import pytest
from prefect.client.orchestration import get_client

from blocks.database import CompanyDatabase
from blocks.embeddings import LocalMiniLMEmbeddings
from blocks.loading import load_embedding_block
from core.errors import (
    DuplicateCompanyIdsError,
    EmptyCompanyListError,
    MissingProviderLimitError,
    TooManyCompaniesError,
    UnknownCompanyIdsError,
)
from core.schema import BulkActionStatus
from core.search import VectorIndex
from flows.engine import BulkActionSummary
from flows.generate_embeddings import DEFAULT_EMBEDDING_PROVIDER, generate_embeddings
from tests.helpers import bulk_action, embedding_rows, latest_bulk_action, seed


def test_embeds_every_company_then_a_rerun_is_free(db: CompanyDatabase, database_name: str) -> None:
    ids = seed(db, 25, seed_value=101)
    first = generate_embeddings(company_ids=ids, database=database_name, created_by="pytest")
    assert isinstance(first, BulkActionSummary)
    assert (first.status, first.succeeded, first.skipped, first.failed) == ("completed", 25, 0, 0)
    # 3 calls of 10: an action this small gets one call per task run, so all 4 slots work (balanced_calls_per_batch)
    assert first.batches == 3 and first.provider_calls == 3
    assert embedding_rows(db, ids) == 25

    record = bulk_action(db, first.bulk_action_id)
    assert record.status is BulkActionStatus.COMPLETED
    assert (record.total, record.processed, record.succeeded) == (25, 25, 25)
    assert record.created_by == "pytest" and record.flow_run_id
    assert record.started_at is not None and record.finished_at is not None

    second = generate_embeddings(company_ids=ids, database=database_name)
    assert isinstance(second, BulkActionSummary)
    assert second.bulk_action_id != first.bulk_action_id
    assert (second.succeeded, second.skipped, second.provider_calls) == (0, 25, 0)
    assert embedding_rows(db, ids) == 25


def test_semantic_search_finds_the_company_described(db: CompanyDatabase, database_name: str) -> None:
    ids = seed(db, 40, seed_value=202)
    generate_embeddings(company_ids=ids, database=database_name)
    client = load_embedding_block(DEFAULT_EMBEDDING_PROVIDER).get_client()
    with db.session() as session:
        index = VectorIndex.load(session, client.model_id)
        from core.store import load_companies
        from core.text import embedding_text

        target = load_companies(session, [ids[17]])[0]
        query = embedding_text(target)
    hits = index.top_k(client.embed([query])[0], k=3, query_model_id=client.model_id)
    assert hits[0].company_id == ids[17]
    assert hits[0].score == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize(
    ("company_ids", "error"),
    [
        ([], EmptyCompanyListError),
        ("duplicates", DuplicateCompanyIdsError),
        ("unknown", UnknownCompanyIdsError),
        ("too_many", TooManyCompaniesError),
    ],
)
def test_bad_input_fails_the_flow_run_and_creates_nothing(
    db: CompanyDatabase, company_ids: object, error: type[Exception]
) -> None:
    ids = seed(db, 3, seed_value=303)
    selection = {
        "duplicates": [ids[0], ids[1], ids[0]],
        "unknown": [ids[0], 987_654_321],
        "too_many": ids,
    }.get(str(company_ids), [])
    before = latest_bulk_action(db)
    maximum = 2 if company_ids == "too_many" else 100
    state = generate_embeddings(company_ids=selection, max_companies=maximum, return_state=True)
    assert state.is_failed()
    with pytest.raises(error):
        state.result()
    after = latest_bulk_action(db)
    assert (after.id if after else None) == (before.id if before else None)


def test_a_missing_provider_limit_stops_the_run_instead_of_running_unlimited(db: CompanyDatabase) -> None:
    LocalMiniLMEmbeddings(concurrency_tag="no-limit-provisioned").save("unlimited", overwrite=True)
    ids = seed(db, 2, seed_value=404)
    state = generate_embeddings(company_ids=ids, provider="local-minilm-embeddings/unlimited", return_state=True)
    assert state.is_failed()
    with pytest.raises(MissingProviderLimitError, match="no-limit-provisioned"):
        state.result()


def test_unknown_provider_block_is_a_clear_error(db: CompanyDatabase) -> None:
    ids = seed(db, 2, seed_value=505)
    state = generate_embeddings(company_ids=ids, provider="no-such-type/default", return_state=True)
    assert state.is_failed()
    with pytest.raises(Exception, match="no-such-type/default"):
        state.result()


def test_progress_and_summary_artifacts_are_published(db: CompanyDatabase) -> None:
    ids = seed(db, 12, seed_value=606)
    summary = generate_embeddings(company_ids=ids, progress_every=1)
    assert isinstance(summary, BulkActionSummary)
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        keys = {
            f"generate-embeddings-{summary.bulk_action_id}-progress",
            f"generate-embeddings-{summary.bulk_action_id}-summary",
        }
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=sorted(keys))))
    by_key = {a.key: a for a in artifacts}
    assert set(by_key) == keys
    assert by_key[f"generate-embeddings-{summary.bulk_action_id}-progress"].data == 100.0
    assert "succeeded" in str(by_key[f"generate-embeddings-{summary.bulk_action_id}-summary"].data)


def test_the_generic_entry_point_rejects_an_unknown_action_and_runs_a_known_one() -> None:
    from blocks.loading import load_database
    from core.errors import UnknownActionError
    from flows.bulk_action import bulk_action

    db = load_database("default")
    state = bulk_action(action="summon_unicorns", company_ids=[1], return_state=True)
    assert state.is_failed()
    with pytest.raises(UnknownActionError, match="generate_embeddings"):
        state.result()
    ids = seed(db, 4, seed_value=707)
    summary = bulk_action(action="generate_embeddings", company_ids=ids)
    assert isinstance(summary, BulkActionSummary) and summary.succeeded == 4
