"""reclassify in local mode end to end: real flow runs on the session's Prefect server, SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, update

from blocks.database import CompanyDatabase
from core.classify_rules import classify
from core.schema import Company, CompanyHistory
from core.taxonomy import TAXONOMY_VERSION
from flows.reclassify import reclassify
from tests.helpers import seed


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
            ).where(Company.id.in_(ids))
        ).all()
    return {row[0]: tuple(row[1:]) for row in rows}


def history_fields(db: CompanyDatabase, bulk_action_id: int) -> dict[str, int]:
    with db.read_session() as session:
        rows = session.execute(
            select(CompanyHistory.field, func.count())
            .where(CompanyHistory.bulk_action_id == bulk_action_id)
            .group_by(CompanyHistory.field)
        ).all()
    return {field: count for field, count in rows}


def test_local_reclassify_classifies_with_history_and_reruns_only_what_is_outdated(
    database_name: str, db: CompanyDatabase
) -> None:
    ids = seed(db, 40, 1401)
    first = reclassify(company_ids=ids, database=database_name)

    assert first.status == "completed" and first.failed == 0 and first.provider_calls == 0
    found = classified(db, ids)
    with db.read_session() as session:
        inputs = {
            c.id: classify(c.nace_code, c.industry, c.activity_description, c.name)
            for c in session.scalars(select(Company).where(Company.id.in_(ids)))
        }
    for cid in ids:
        expected = inputs[cid]
        assert found[cid] == (expected.sector, expected.subsector, expected.business_model, TAXONOMY_VERSION, "local")
    fields = history_fields(db, first.bulk_action_id)
    placed = sum(1 for c in inputs.values() if c.sector is not None)
    assert fields["sector"] == placed and fields["taxonomy_version"] == 40

    again = reclassify(company_ids=ids, database=database_name)
    assert (again.skipped, again.succeeded) == (40, 0)  # nothing outdated: nothing written
    assert history_fields(db, again.bulk_action_id) == {}

    changed = ids[0]
    with db.session() as session:
        session.execute(
            update(Company)
            .where(Company.id == changed)
            .values(nace_code=None, industry=None, activity_description="A neighbourhood restaurant and bar.")
        )
    third = reclassify(company_ids=ids, database=database_name)
    assert (third.succeeded, third.skipped) == (1, 39)
    assert classified(db, [changed])[changed][:1] == (
        classify(None, None, "A neighbourhood restaurant and bar.", None).sector,
    )

    forced = reclassify(company_ids=ids, database=database_name, force=True)
    assert forced.skipped == 40  # forced, but every classification came out the same: no history rows
    assert history_fields(db, forced.bulk_action_id) == {}


def test_column_mode_reclassifies_one_field(database_name: str, db: CompanyDatabase) -> None:
    ids = seed(db, 10, 1402)
    with db.session() as session:
        session.execute(update(Company).where(Company.id.in_(ids)).values(sector="U", business_model="marketplace"))
    summary = reclassify(company_ids=ids, database=database_name, target_column="business_model")
    assert summary.status == "completed"
    fields = history_fields(db, summary.bulk_action_id)
    assert "sector" not in fields and "subsector" not in fields
    assert all(row[0] == "U" for row in classified(db, ids).values())  # the other fields keep their values
