"""The company store on SQLite and PostgreSQL: migrations, outcomes, dead jobs, embeddings, search."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import func, inspect, select

from blocks.database import CompanyDatabase
from core.schema import (
    Base,
    BulkAction,
    BulkActionOutcome,
    BulkActionStatus,
    Company,
    CompanyEmbedding,
    DeadJob,
    OutcomeStatus,
)
from core.search import VectorIndex, vector_to_bytes
from core.store import (
    CompanyResult,
    bulk_action_company_ids,
    create_bulk_action,
    embedding_inputs,
    existing_company_ids,
    load_companies,
    outcome_counts,
    record_results,
    set_status,
    upsert_embeddings,
    write_progress,
)


def add_companies(db: CompanyDatabase, n: int, prefix: str = "Store") -> list[int]:
    with db.session() as session:
        rows = [Company(name=f"{prefix} {i}", country="NL") for i in range(n)]
        session.add_all(rows)
        session.flush()
        return [c.id for c in rows]


def test_migrations_create_every_table(db: CompanyDatabase) -> None:
    tables = set(inspect(db.get_engine()).get_table_names())
    assert {"companies", "company_embeddings", "bulk_actions", "bulk_action_outcomes", "dead_jobs"} <= tables
    assert "alembic_version" in tables


def test_the_migrations_build_exactly_the_models_schema(db: CompanyDatabase) -> None:
    """Alembic's autogenerate finds nothing to add, drop or alter: a model change always comes with a migration."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with db.get_engine().connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []


def test_large_id_lists_are_chunked(db: CompanyDatabase) -> None:
    ids = add_companies(db, 2100)
    with db.session() as session:
        assert existing_company_ids(session, ids + [10**9]) == set(ids)
        loaded = load_companies(session, list(reversed(ids)))
    assert [c.id for c in loaded] == list(reversed(ids))


def test_bulk_action_membership_keeps_selection_order(db: CompanyDatabase) -> None:
    ids = add_companies(db, 30)
    selection = ids[::-1]
    with db.session() as session:
        record = create_bulk_action(session, action="generate_embeddings", company_ids=selection, created_by="test")
        action_id = record.id
    with db.session() as session:
        assert bulk_action_company_ids(session, action_id) == selection
        counts = outcome_counts(session, action_id)
        stored = session.get(BulkAction, action_id)
        assert stored is not None and stored.status is BulkActionStatus.PENDING and stored.total == 30
        assert stored.created_at.tzinfo is not None
    assert (counts.total, counts.processed) == (30, 0)


def test_results_update_outcomes_and_failures_become_dead_jobs(db: CompanyDatabase) -> None:
    ids = add_companies(db, 4)
    with db.session() as session:
        action_id = create_bulk_action(session, action="generate_embeddings", company_ids=ids, created_by="test").id
    results = [
        CompanyResult(ids[0], OutcomeStatus.SUCCEEDED),
        CompanyResult(ids[1], OutcomeStatus.SKIPPED, detail="unchanged"),
        CompanyResult(
            ids[2],
            OutcomeStatus.FAILED,
            "boom",
            attempts=3,
            error_class="ProviderServerError",
            retryable=True,
        ),
    ]
    with db.session() as session:
        record_results(session, action_id, "generate_embeddings", results)
        counts = write_progress(session, action_id)
    assert (counts.succeeded, counts.skipped, counts.failed, counts.total) == (1, 1, 1, 4)
    # the same failure recorded again (a rerun) refreshes the dead job instead of duplicating it
    with db.session() as session:
        record_results(
            session,
            action_id,
            "generate_embeddings",
            [CompanyResult(ids[2], OutcomeStatus.FAILED, "boom again", attempts=5, error_class="X")],
        )
    with db.session() as session:
        dead = session.scalars(select(DeadJob).where(DeadJob.bulk_action_id == action_id)).all()
        assert len(dead) == 1
        assert (dead[0].company_id, dead[0].error_message, dead[0].attempts) == (ids[2], "boom again", 5)
        pending = session.scalar(
            select(func.count()).where(
                BulkActionOutcome.bulk_action_id == action_id,
                BulkActionOutcome.status == OutcomeStatus.PENDING,
            )
        )
        assert pending == 1
        record = session.get(BulkAction, action_id)
        assert record is not None and (record.processed, record.failed) == (3, 1)


def test_recorded_results_report_how_the_counts_moved(db: CompanyDatabase) -> None:
    ids = add_companies(db, 5)
    with db.session() as session:
        action_id = create_bulk_action(session, action="generate_embeddings", company_ids=ids, created_by="test").id
        start = outcome_counts(session, action_id)
    first = [
        CompanyResult(ids[0], OutcomeStatus.SUCCEEDED),
        CompanyResult(ids[1], OutcomeStatus.SUCCEEDED),
        CompanyResult(ids[2], OutcomeStatus.FAILED, "boom", 1, "X"),
    ]
    # a rerun of the same companies: one unchanged, one now skipped, one recovered, plus a fresh one
    second = [
        CompanyResult(ids[0], OutcomeStatus.SUCCEEDED),
        CompanyResult(ids[1], OutcomeStatus.SKIPPED, "unchanged"),
        CompanyResult(ids[2], OutcomeStatus.SUCCEEDED),
        CompanyResult(ids[3], OutcomeStatus.FAILED, "boom", 1, "X"),
    ]
    with db.session() as session:
        changes_first = record_results(session, action_id, "generate_embeddings", first)
    with db.session() as session:
        changes_second = record_results(session, action_id, "generate_embeddings", second)
    assert changes_first == {"pending": -3, "succeeded": 2, "failed": 1}
    # succeeded -1 +1 and failed -1 +1 cancel out: only what moved in total is reported
    assert changes_second == {"skipped": 1, "pending": -1}
    with db.read_session() as session:
        recount = outcome_counts(session, action_id)
    assert start.changed_by(changes_first).changed_by(changes_second) == recount
    assert (recount.succeeded, recount.skipped, recount.failed, recount.total) == (2, 1, 1, 5)
    with db.session() as session:
        assert record_results(session, action_id, "generate_embeddings", []) == {}


def test_status_timestamps(db: CompanyDatabase) -> None:
    ids = add_companies(db, 1)
    with db.session() as session:
        action_id = create_bulk_action(session, action="generate_embeddings", company_ids=ids, created_by="t").id
        set_status(session, action_id, BulkActionStatus.RUNNING)
    with db.session() as session:
        record = session.get(BulkAction, action_id)
        assert record is not None and record.started_at is not None and record.finished_at is None
        set_status(session, action_id, BulkActionStatus.COMPLETED)
    with db.session() as session:
        record = session.get(BulkAction, action_id)
        assert record is not None and record.status is BulkActionStatus.COMPLETED
        assert record.finished_at is not None and record.finished_at >= record.started_at  # type: ignore[operator]


def _unit(v: list[float]) -> np.ndarray:
    a = np.array(v, dtype=np.float32)
    return a / np.linalg.norm(a)


def test_embeddings_upsert_one_row_per_company_and_model(db: CompanyDatabase) -> None:
    ids = add_companies(db, 2)
    row = {"company_id": ids[0], "model_id": "m1", "dimension": 3, "text_sha256": "a" * 64, "text": "t"}
    with db.session() as session:
        upsert_embeddings(session, [{**row, "vector": vector_to_bytes(_unit([1, 0, 0]))}])
        upsert_embeddings(session, [{**row, "text_sha256": "b" * 64, "vector": vector_to_bytes(_unit([0, 1, 0]))}])
        upsert_embeddings(session, [{**row, "model_id": "m2", "vector": vector_to_bytes(_unit([0, 0, 1]))}])
    with db.session() as session:
        count = session.scalar(select(func.count()).where(CompanyEmbedding.company_id == ids[0]))
        assert count == 2
        current = {row.id: row.current_sha256 for row in embedding_inputs(session, ids, "m1")}
        assert current == {ids[0]: "b" * 64, ids[1]: None}


def test_search_ranks_by_cosine_and_never_mixes_models(db: CompanyDatabase) -> None:
    model = f"test-model-{db.backend}"
    ids = add_companies(db, 3, prefix="Search")
    vectors = [_unit([1, 0, 0]), _unit([0.9, 0.1, 0]), _unit([0, 0, 1])]
    with db.session() as session:
        upsert_embeddings(
            session,
            [
                {
                    "company_id": cid,
                    "model_id": model,
                    "dimension": 3,
                    "text_sha256": "x" * 64,
                    "text": "t",
                    "vector": vector_to_bytes(v),
                }
                for cid, v in zip(ids, vectors, strict=True)
            ],
        )
    with db.session() as session:
        index = VectorIndex.load(session, model)
    hits = index.top_k(_unit([1, 0.05, 0]), k=2, query_model_id=model)
    assert [h.company_id for h in hits] == [ids[0], ids[1]]
    assert hits[0].score > hits[1].score > 0.9
    with pytest.raises(ValueError, match="cannot be compared"):
        index.top_k(_unit([1, 0, 0]), query_model_id="another-model")
