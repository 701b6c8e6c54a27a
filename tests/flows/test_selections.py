"""Selections through real flow runs: filters, another action's companies, dry runs and empty selections."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, update

from blocks.database import CompanyDatabase
from core.schema import BulkAction, BulkActionOutcome, Company
from flows.engine import BulkActionSummary, DryRunReport
from flows.generate_embeddings import generate_embeddings
from tests.helpers import bulk_action, seed


def _action_count(db: CompanyDatabase) -> int:
    with db.read_session() as session:
        return int(session.scalar(select(func.count()).select_from(BulkAction)) or 0)


def _members(db: CompanyDatabase, bulk_action_id: int) -> list[int]:
    with db.read_session() as session:
        return list(
            session.scalars(
                select(BulkActionOutcome.company_id)
                .where(BulkActionOutcome.bulk_action_id == bulk_action_id)
                .order_by(BulkActionOutcome.position)
            )
        )


def _tag(db: CompanyDatabase, ids: list[int], industry: str, priorities: list[int]) -> None:
    with db.session() as session:
        for cid, priority in zip(ids, priorities, strict=True):
            session.execute(update(Company).where(Company.id == cid).values(industry=industry, priority=priority))


def test_a_filter_selection_runs_on_exactly_the_matching_companies_in_priority_order(
    db: CompanyDatabase, database_name: str
) -> None:
    ids = seed(db, 30, seed_value=9101)
    industry = f"Selection test {database_name} 9101"
    chosen = ids[3:15]
    _tag(db, chosen, industry, priorities=list(range(len(chosen))))
    selection = {"filter": {"industries": [industry.upper()]}, "limit": 10}

    summary = generate_embeddings(selection=selection, database=database_name)

    assert isinstance(summary, BulkActionSummary) and (summary.total, summary.succeeded) == (10, 10)
    assert _members(db, summary.bulk_action_id) == list(reversed(chosen))[:10]  # highest priority first, limited
    stored = bulk_action(db, summary.bulk_action_id).parameters or {}
    assert stored["selection"]["filter"]["industries"] == [industry.upper()] and stored["selection"]["limit"] == 10
    # one call of 10: the block's 20 calls per task run are cut to 1 for an action this small (balanced_calls_per_batch)
    assert (stored["call_size"], stored["calls_per_batch"]) == (10, 1)


def test_another_actions_failed_companies_are_a_selection(db: CompanyDatabase, database_name: str) -> None:
    ids = seed(db, 6, seed_value=9202)
    with db.session() as session:  # two companies the embedding refuses: an empty name is invalid input
        session.execute(update(Company).where(Company.id.in_(ids[:2])).values(name=" "))
    first = generate_embeddings(company_ids=ids, database=database_name)
    assert isinstance(first, BulkActionSummary) and first.failed == 2
    with db.session() as session:
        session.execute(update(Company).where(Company.id == ids[0]).values(name="Repaired B.V."))

    retry = generate_embeddings(
        selection={"from_action": {"bulk_action_id": first.bulk_action_id, "outcome": "failed"}, "order": "id"},
        database=database_name,
    )

    assert isinstance(retry, BulkActionSummary)
    assert sorted(_members(db, retry.bulk_action_id)) == sorted(ids[:2])
    assert (retry.succeeded, retry.failed, retry.invalid_input) == (1, 1, 1)


def test_a_dry_run_reports_the_count_and_a_sample_and_writes_nothing(db: CompanyDatabase, database_name: str) -> None:
    ids = seed(db, 12, seed_value=9303)
    industry = f"Dry run {database_name} 9303"
    _tag(db, ids[:7], industry, priorities=[1] * 7)
    before = _action_count(db)

    report = generate_embeddings(selection={"filter": {"industries": [industry]}}, database=database_name, dry_run=True)

    assert isinstance(report, DryRunReport) and report.count == 7
    assert {row["id"] for row in report.sample} == set(ids[:7])
    assert _action_count(db) == before


def test_an_empty_selection_ends_cleanly_without_an_action(db: CompanyDatabase, database_name: str) -> None:
    before = _action_count(db)
    state = generate_embeddings(
        selection={"filter": {"name_contains": "no company is called this 9404"}},
        database=database_name,
        return_state=True,
    )
    assert state.is_completed() and "no company matches the selection" in str(state.message)
    assert _action_count(db) == before


@pytest.mark.parametrize(
    ("selection", "message"),
    [
        ({"filter": {"colour": ["red"]}}, "colour"),
        ({"ids": [1], "filter": {"countries": ["Spain"]}}, "exactly one"),
        ({"filter": {"score_min": 40, "score_max": 10}}, "score"),
    ],
)
def test_a_bad_selection_is_refused_before_anything_is_written(
    db: CompanyDatabase, selection: dict[str, object], message: str
) -> None:
    before = _action_count(db)
    state = generate_embeddings(selection=selection, return_state=True)  # type: ignore[arg-type]
    assert state.is_failed() and message in str(state.message)
    assert _action_count(db) == before
