"""The import's matching and chunk application on SQLite and PostgreSQL, without Prefect."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select

from blocks.database import CompanyDatabase
from core.company_rows import NormalisedCompany, normalise_row
from core.importer import apply_chunk
from core.schema import BulkActionOutcome, Company, OutcomeStatus
from core.store import create_bulk_action


def _rows(raw: list[dict[str, str | None]]) -> list[tuple[int, NormalisedCompany]]:
    rows = []
    for number, values in enumerate(raw, start=1):
        company = normalise_row(values, number)
        assert isinstance(company, NormalisedCompany), company
        rows.append((number, company))
    return rows


def _new_import(db: CompanyDatabase) -> int:
    with db.session() as session:
        record = create_bulk_action(session, action="import_companies", company_ids=[], created_by="pytest")
        session.flush()
        return record.id


def test_the_duplicate_rule_domain_first_then_name_and_country(db: CompanyDatabase) -> None:
    brand = f"match{uuid.uuid4().hex[:6]}"
    rows = _rows(
        [
            {"name": f"{brand} B.V.", "website": f"{brand}.nl", "country": "NL"},
            {"name": f"{brand.upper()} BV", "website": f"https://shop.{brand}.nl/x", "country": "NL"},  # same domain
            {"name": f"{brand}, b.v.", "country": "Netherlands"},  # no website: same name key and country
            {"name": f"{brand} BV", "website": f"{brand}-other.nl", "country": "NL"},  # both have domains: differ
            {"name": f"{brand} BV", "country": "DE"},  # another country
        ]
    )
    import_id = _new_import(db)
    with db.session() as session:
        result = apply_chunk(session, import_id, rows)
    assert (result.inserted, result.duplicates) == (3, 2)


def test_a_chunk_applied_twice_inserts_nothing_twice_and_counts_the_same(db: CompanyDatabase) -> None:
    brand = f"twice{uuid.uuid4().hex[:6]}"
    rows = _rows([{"name": f"{brand} {n % 4} Ltd", "website": f"{brand}{n % 4}.ie"} for n in range(6)])
    import_id = _new_import(db)
    with db.session() as session:
        first = apply_chunk(session, import_id, rows)
    with db.session() as session:  # the process died after the commit, before the checkpoint: Prefect reruns it
        second = apply_chunk(session, import_id, rows)
    assert (first.inserted, first.duplicates) == (second.inserted, second.duplicates) == (4, 2)
    with db.session() as session:
        named = session.scalar(select(func.count()).select_from(Company).where(Company.name.like(f"{brand}%")))
        outcomes = session.execute(
            select(BulkActionOutcome.position, BulkActionOutcome.status).where(
                BulkActionOutcome.bulk_action_id == import_id
            )
        ).all()
    assert named == 4
    assert sorted(outcomes) == [(n, OutcomeStatus.SUCCEEDED) for n in (1, 2, 3, 4)]


def test_outcome_rows_written_in_bulk_read_back_like_any_other(db: CompanyDatabase) -> None:
    """``insert_rows`` runs each column's own processing: the timestamps and statuses read back as written."""
    brand = f"bulk{uuid.uuid4().hex[:6]}"
    import_id = _new_import(db)
    with db.session() as session:
        apply_chunk(session, import_id, _rows([{"name": f"{brand} SpA", "website": f"{brand}.it"}]))
    with db.session() as session:
        outcome = session.scalars(select(BulkActionOutcome).where(BulkActionOutcome.bulk_action_id == import_id)).one()
        assert outcome.status is OutcomeStatus.SUCCEEDED and outcome.detail == "inserted"
        assert outcome.updated_at.tzinfo is not None and outcome.attempts == 1
