"""Text columns never carry NUL or other control characters into the database, on SQLite and PostgreSQL.

The cleaning lives in the column types (``core.clean_types``), so it covers ORM writes and Core statements
alike; only raw ``text()`` SQL goes around it (not tested: it is the documented way around).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import bindparam, delete, insert, select, update

from blocks.database import CompanyDatabase
from core.clean_types import CleanString, CleanText
from core.schema import (
    BulkAction,
    BulkActionOutcome,
    Company,
    CompanyEmbedding,
    CompanyScore,
    DeadJob,
)

companies = Company.__table__

CLEANED_COLUMNS = {
    Company: [
        "name",
        "website",
        "industry",
        "nace_code",
        "country",
        "activity_description",
        "ownership_type",
        "review_reason",
    ],
    BulkAction: ["status_reason"],
    BulkActionOutcome: ["detail"],
    DeadJob: ["error_message", "error_class"],
    CompanyScore: ["reasoning", "level"],
    CompanyEmbedding: ["text"],
}


@pytest.mark.parametrize(
    ("model", "column"), [(model, column) for model, columns in CLEANED_COLUMNS.items() for column in columns]
)
def test_text_columns_use_the_cleaning_types(model: type, column: str) -> None:
    assert isinstance(model.__table__.c[column].type, CleanString | CleanText)  # type: ignore[attr-defined]


def test_the_database_types_are_unchanged() -> None:
    name_type = companies.c.name.type
    assert isinstance(name_type, CleanString) and name_type.impl_instance.length == 300  # type: ignore[attr-defined]
    assert type(companies.c.activity_description.type.impl_instance).__name__ == "Text"  # type: ignore[attr-defined]


@pytest.fixture
def tag() -> str:
    return uuid.uuid4().hex[:8]


@pytest.fixture
def cleanup(db: CompanyDatabase) -> Iterator[list[int]]:
    """Ids of the companies a test made, deleted afterwards (the session's databases are shared)."""
    ids: list[int] = []
    yield ids
    with db.session() as session:
        session.execute(delete(Company).where(Company.id.in_(ids)))


def stored(db: CompanyDatabase, company_id: int) -> tuple[str, str | None, str | None]:
    with db.read_session() as session:
        row = session.execute(
            select(Company.name, Company.activity_description, Company.country).where(Company.id == company_id)
        ).one()
    return row.name, row.activity_description, row.country


def test_orm_writes_are_cleaned(db: CompanyDatabase, cleanup: list[int], tag: str) -> None:
    with db.session() as session:
        company = Company(
            name=f"Acme\x00 {tag}\x07",
            activity_description="Line one\x00.\nLine two\twith a tab\x1b.\r\n",
            country="Cura\u0063\u0327ao",  # c + combining cedilla: NFC makes it "Curaçao"
        )
        session.add(company)
        session.flush()
        cleanup.append(company.id)
    assert stored(db, company.id) == (f"Acme {tag}", "Line one.\nLine two\twith a tab.\r\n", "Curaçao")

    with db.session() as session:
        loaded = session.get(Company, company.id)
        assert loaded is not None
        loaded.activity_description = "Updated\x00 by the ORM\x0b"
    assert stored(db, company.id)[1] == "Updated by the ORM"


def test_core_executemany_insert_is_cleaned(db: CompanyDatabase, cleanup: list[int], tag: str) -> None:
    rows = [
        {"name": f"Core\x00 {tag} {i}", "activity_description": f"row {i}\x00\n\x01end", "country": "Cafe\u0301"}
        for i in range(3)
    ]
    with db.session() as session:
        session.execute(insert(companies), rows)
        ids = list(session.scalars(select(Company.id).where(Company.name.like(f"Core {tag} %")).order_by(Company.id)))
        cleanup.extend(ids)
    assert len(ids) == 3
    assert [stored(db, cid) for cid in ids] == [(f"Core {tag} {i}", f"row {i}\nend", "Café") for i in range(3)]


def test_orm_bulk_insert_and_multi_values_insert_are_cleaned(db: CompanyDatabase, cleanup: list[int], tag: str) -> None:
    with db.session() as session:
        ids = list(session.scalars(insert(Company).returning(Company.id), [{"name": f"Bulk\x00 {tag}"}]))
        ids += list(
            session.scalars(
                insert(companies)
                .values([{"name": f"Multi\x00 {tag} a"}, {"name": f"Multi {tag} b\x00"}])
                .returning(companies.c.id)
            )
        )
        cleanup.extend(ids)
    assert sorted(stored(db, cid)[0] for cid in ids) == [f"Bulk {tag}", f"Multi {tag} a", f"Multi {tag} b"]


def test_core_updates_are_cleaned(db: CompanyDatabase, cleanup: list[int], tag: str) -> None:
    with db.session() as session:
        ids = list(session.scalars(insert(Company).returning(Company.id), [{"name": f"U{i} {tag}"} for i in range(3)]))
        cleanup.extend(ids)
    with db.session() as session:
        # a single update with values()
        session.execute(update(companies).where(companies.c.id == ids[0]).values(name=f"One\x00 {tag}"))
        # an executemany update with bindparams (the pattern core.store uses for outcomes and review flags)
        stmt = (
            update(companies)
            .where(companies.c.id == bindparam("key_id"))
            .values(name=bindparam("new_name"), activity_description=bindparam("new_description"))
        )
        session.execute(
            stmt,
            [
                {"key_id": ids[1], "new_name": f"Two\x00 {tag}", "new_description": "a\x00b\tc"},
                {"key_id": ids[2], "new_name": f"Three {tag}\x1f", "new_description": "e\u0301"},
            ],
        )
    assert [stored(db, cid)[:2] for cid in ids] == [
        (f"One {tag}", None),
        (f"Two {tag}", "ab\tc"),
        (f"Three {tag}", "é"),
    ]
    with db.session() as session:  # the ORM's bulk update by primary key
        session.execute(update(Company), [{"id": ids[0], "country": "Nether\x00lands"}])
    assert stored(db, ids[0])[2] == "Netherlands"


def test_lookups_by_a_dirty_value_find_the_clean_row(db: CompanyDatabase, cleanup: list[int], tag: str) -> None:
    with db.session() as session:
        company = Company(name=f"Lookup {tag}")
        session.add(company)
        session.flush()
        cleanup.append(company.id)
    with db.read_session() as session:
        found = session.scalars(select(Company.id).where(Company.name == f"Look\x00up {tag}")).all()
    assert found == [company.id]
