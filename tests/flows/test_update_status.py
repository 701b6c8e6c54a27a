"""update_status on a real Prefect server, SQLite and PostgreSQL: values set, history written, reruns idempotent."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from blocks.database import CompanyDatabase
from core.errors import InputError
from core.history import changes_by_action, decode_value
from core.schema import Company, CompanyStatus
from flows.bulk_action import bulk_action as bulk_action_flow
from flows.engine import BulkActionSummary, DryRunReport
from flows.update_status import update_status
from tests.helpers import seed


def _companies(db: CompanyDatabase, ids: list[int]) -> dict[int, tuple[CompanyStatus, int, bool, str | None]]:
    with db.session() as session:
        rows = session.execute(
            select(Company.id, Company.status, Company.priority, Company.needs_review, Company.review_reason).where(
                Company.id.in_(ids)
            )
        )
        return {row[0]: (row[1], row[2], row[3], row[4]) for row in rows}


def test_status_priority_and_review_are_set_with_one_history_row_per_changed_field(
    db: CompanyDatabase, database_name: str
) -> None:
    ids = seed(db, 12, seed_value=12001)
    with db.session() as session:  # two already deleted: skipped, no history
        session.execute(update(Company).where(Company.id.in_(ids[:2])).values(status=CompanyStatus.DELETED))
    before = _companies(db, ids)

    summary = update_status(
        company_ids=ids,
        status="deleted",
        company_priority=7,
        database=database_name,
    )

    assert isinstance(summary, BulkActionSummary) and summary.status == "completed"
    after = _companies(db, ids)
    assert all(after[cid][:2] == (CompanyStatus.DELETED, 7) for cid in ids)
    with db.session() as session:
        history = changes_by_action(session, summary.bulk_action_id)
        rows = {(h.company_id, h.field): (h.old_value, h.new_value) for h in history}
    for cid in ids:
        old_status, old_priority = before[cid][:2]
        if old_status is not CompanyStatus.DELETED:
            assert rows[(cid, "status")] == ("active", "deleted")
        else:
            assert (cid, "status") not in rows
        if old_priority != 7:
            assert decode_value("priority", rows[(cid, "priority")][0]) == old_priority
            assert decode_value("priority", rows[(cid, "priority")][1]) == 7
    assert len(history) == len(rows)  # one row per changed field, no duplicates

    again = update_status(company_ids=ids, status="deleted", company_priority=7, database=database_name)
    assert isinstance(again, BulkActionSummary) and (again.succeeded, again.skipped) == (0, 12)
    with db.session() as session:
        assert changes_by_action(session, again.bulk_action_id) == []


def test_review_flag_is_set_with_its_reason_and_cleared(db: CompanyDatabase, database_name: str) -> None:
    ids = seed(db, 4, seed_value=12002)
    flagged = update_status(
        company_ids=ids, needs_review=True, review_reason="suspicious website", database=database_name
    )
    assert isinstance(flagged, BulkActionSummary) and flagged.succeeded == 4
    assert {v[2:] for v in _companies(db, ids).values()} == {(True, "suspicious website")}

    cleared = bulk_action_flow(  # the same through the generic entry point
        action="update_status",
        company_ids=ids[:2],
        database=database_name,
        action_parameters={"needs_review": False},
    )
    assert isinstance(cleared, BulkActionSummary) and cleared.succeeded == 2
    states = _companies(db, ids)
    assert [states[cid][2:] for cid in ids] == [(False, None), (False, None), *[(True, "suspicious website")] * 2]


def test_merged_companies_are_refused_one_by_one_and_the_rest_change(db: CompanyDatabase, database_name: str) -> None:
    ids = seed(db, 5, seed_value=12003)
    with db.session() as session:
        session.execute(
            update(Company).where(Company.id == ids[0]).values(status=CompanyStatus.MERGED, merged_into_id=ids[1])
        )
    summary = update_status(company_ids=ids, company_priority=-5, database=database_name, failure_threshold=1.0)
    assert isinstance(summary, BulkActionSummary) and (summary.succeeded, summary.failed) == (4, 1)
    assert summary.errors == {"MergedCompany": 1}
    assert _companies(db, ids)[ids[0]][1] != -5


def test_a_filter_selection_with_deleted_status_restores_companies(db: CompanyDatabase, database_name: str) -> None:
    ids = seed(db, 6, seed_value=12004)
    industry = f"Restore test {database_name}"
    with db.session() as session:
        session.execute(
            update(Company).where(Company.id.in_(ids[:3])).values(status=CompanyStatus.DELETED, industry=industry)
        )
    selection = {"filter": {"industries": [industry], "statuses": ["deleted"]}}
    preview = update_status(selection=selection, status="active", database=database_name, dry_run=True)
    assert isinstance(preview, DryRunReport) and preview.count == 3
    assert {v[0] for v in _companies(db, ids[:3]).values()} == {CompanyStatus.DELETED}  # the dry run wrote nothing

    summary = update_status(selection=selection, status="active", database=database_name)
    assert isinstance(summary, BulkActionSummary) and summary.succeeded == 3
    assert {v[0] for v in _companies(db, ids).values()} == {CompanyStatus.ACTIVE}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({}, "say what to set"),
        ({"needs_review": True}, "needs a review_reason"),
        ({"review_reason": "why"}, "goes with needs_review=true"),
        ({"company_priority": 5000}, "priority"),
    ],
)
def test_bad_values_are_refused_before_anything_is_written(values: dict[str, object], message: str) -> None:
    with pytest.raises(InputError, match=message):
        update_status(company_ids=[1], **values)  # type: ignore[arg-type]


def test_bulk_action_refuses_parameters_update_status_does_not_take() -> None:
    with pytest.raises(InputError, match="does not take shards"):
        bulk_action_flow(action="update_status", company_ids=[1], shards=2, action_parameters={"status": "active"})
