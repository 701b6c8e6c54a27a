"""import_companies on a real Prefect server, SQLite and PostgreSQL: formats, duplicates, updates, rejections."""

from __future__ import annotations

import csv
import gzip
import io
import json
import uuid
from typing import Any

import polars as pl
import pytest
from prefect.filesystems import RemoteFileSystem
from sqlalchemy import func, select

from blocks.database import CompanyDatabase
from blocks.storage import DEFAULT_STORAGE, open_file
from core.errors import InputError
from core.history import changes_by_action
from core.schema import BulkActionOutcome, BulkActionStatus, Company
from flows.engine import BulkActionSummary
from flows.import_companies import import_companies
from flows.import_report import ImportSummary
from tests.helpers import bulk_action


def _put(content: bytes, name: str) -> str:
    """``content`` as a file in the default storage; returns its path there."""
    path = f"imports/{uuid.uuid4().hex[:8]}/{name}"
    with open_file(DEFAULT_STORAGE, path, "wb") as stream:
        stream.write(content)
    return path


def _read(path: str) -> bytes:
    with open_file(DEFAULT_STORAGE, path, "rb") as stream:
        return stream.read()


def _csv(rows: list[dict[str, Any]], delimiter: str = ",", encoding: str = "utf-8") -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), delimiter=delimiter, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode(encoding)


def _unique(tag: str) -> str:
    return f"{tag}{uuid.uuid4().hex[:6]}"


def _companies(db: CompanyDatabase, import_id: int) -> list[Company]:
    with db.session() as session:
        rows = list(
            session.scalars(
                select(Company)
                .join(BulkActionOutcome, BulkActionOutcome.company_id == Company.id)
                .where(BulkActionOutcome.bulk_action_id == import_id)
                .order_by(BulkActionOutcome.position)
            )
        )
        session.expunge_all()
        return rows


def test_a_csv_with_common_headers_duplicates_and_bad_rows_is_imported_with_a_rejected_rows_file(
    db: CompanyDatabase, database_name: str
) -> None:
    brand = _unique("acme")
    rows = [
        {"company_name": f"{brand} B.V.", "domain": f"{brand}.nl", "country_code": "NL", "category": "Tools", "x": "1"},
        {"company_name": f"{brand.upper()} BV", "domain": f"https://www.{brand}.nl/contact", "country_code": "nld",
         "category": "", "x": "2"},
        {"company_name": f"{brand} Holding", "domain": "", "country_code": "Germany", "category": "", "x": "3"},
        {"company_name": "   ", "domain": f"{brand}-empty.nl", "country_code": "NL", "category": "", "x": "4"},
        {"company_name": f"{brand} Local", "domain": "http://127.0.0.1:22", "country_code": "NL", "category": "",
         "x": "5"},
        {"company_name": f"{brand} Atlantis", "domain": "", "country_code": "Atlantis", "category": "", "x": "6"},
        {"company_name": f"{brand} GmbH", "domain": f"{brand}.de", "country_code": "DE", "category": "", "x": "=1+1"},
    ]  # fmt: skip
    source = _put(_csv(rows), "companies.csv")

    summary = import_companies(source=source, database=database_name, max_rejected_ratio=0.5)

    assert isinstance(summary, ImportSummary) and summary.status == "completed"
    assert (summary.read, summary.inserted, summary.duplicates, summary.rejected) == (7, 3, 1, 3)
    assert summary.unmapped_columns == ["x"]
    companies = _companies(db, summary.bulk_action_id or 0)
    assert [(c.name, c.domain, c.country) for c in companies] == [
        (f"{brand} B.V.", f"{brand}.nl", "NL"),
        (f"{brand} Holding", None, "DE"),
        (f"{brand} GmbH", f"{brand}.de", "DE"),
    ]
    assert companies[0].website == f"https://{brand}.nl/" and companies[0].industry == "Tools"
    record = bulk_action(db, summary.bulk_action_id or 0)
    assert record.status is BulkActionStatus.COMPLETED and (record.succeeded, record.failed) == (3, 3)

    assert summary.rejected_file is not None
    rejected = list(csv.DictReader(io.StringIO(_read(f"{source}.rejected-{summary.bulk_action_id}.csv").decode())))
    assert [r["row_number"] for r in rejected] == ["4", "5", "6"]
    assert "name is empty" in rejected[0]["reason"] and "loopback" in rejected[1]["reason"]
    assert "Atlantis" in rejected[2]["reason"] and rejected[2]["x"] == "6"  # the original values are kept


def test_the_import_s_companies_are_a_selection_and_then_runs_actions_on_them_as_child_runs(
    db: CompanyDatabase, database_name: str
) -> None:
    brand = _unique("then")
    rows = [{"name": f"{brand} {n} Ltd", "website": f"{brand}{n}.co.uk", "country": "GB"} for n in range(5)]
    source = _put(_csv(rows), "then.csv")

    summary = import_companies(source=source, database=database_name, then=[{"action": "generate_embeddings"}])

    assert summary.inserted == 5 and len(summary.follow_ups) == 1
    embedded = summary.follow_ups[0]
    assert isinstance(embedded, BulkActionSummary) and embedded.succeeded == 5
    stored = bulk_action(db, embedded.bulk_action_id).parameters or {}
    assert stored["selection"]["from_action"]["bulk_action_id"] == summary.bulk_action_id


def test_update_mode_fills_or_overwrites_as_asked_with_history(db: CompanyDatabase, database_name: str) -> None:
    brand = _unique("upd")
    first = [{"name": f"{brand} AB", "website": f"{brand}.se", "country": "SE", "industry": "", "nace_code": ""}]
    created = import_companies(source=_put(_csv(first), "a.csv"), database=database_name)
    assert created.inserted == 1
    second = [{"name": f"{brand} Aktiebolag", "website": f"www.{brand}.se", "country": "Sweden",
               "industry": "Furniture", "nace_code": "3101"}]  # fmt: skip

    skipped = import_companies(source=_put(_csv(second), "b.csv"), database=database_name)
    assert (skipped.inserted, skipped.duplicates, skipped.updated) == (0, 1, 0)

    filled = import_companies(
        source=_put(_csv(second), "c.csv"),
        database=database_name,
        mode="update",
        update_fields={"industry": "fill", "nace_code": "fill", "name": "fill"},
    )
    assert (filled.inserted, filled.updated) == (0, 1)
    company = _companies(db, created.bulk_action_id or 0)[0]
    assert (company.name, company.industry, company.nace_code) == (f"{brand} AB", "Furniture", "31.01")
    with db.session() as session:
        changes = {(h.field, h.old_value, h.new_value) for h in changes_by_action(session, filled.bulk_action_id or 0)}
    assert changes == {("industry", None, "Furniture"), ("nace_code", None, "31.01")}

    renamed = import_companies(
        source=_put(_csv(second), "d.csv"), database=database_name, mode="update", update_fields={"name": "overwrite"}
    )
    assert renamed.updated == 1
    assert _companies(db, created.bulk_action_id or 0)[0].name == f"{brand} Aktiebolag"


@pytest.mark.parametrize("kind", ["ndjson.gz", "json", "parquet", "latin1.csv"])
def test_every_format_is_read(db: CompanyDatabase, database_name: str, kind: str) -> None:
    brand = _unique("fmt")
    rows = [{"Company": f"{brand} Café {n} SARL", "Web": f"{brand}{n}.fr", "Pays": "France"} for n in range(3)]
    if kind == "ndjson.gz":
        content = gzip.compress("\n".join(json.dumps(r) for r in rows).encode())
    elif kind == "json":
        content = json.dumps(rows).encode()
    elif kind == "parquet":
        buffer = io.BytesIO()
        pl.DataFrame(rows).write_parquet(buffer)
        content = buffer.getvalue()
    else:
        content = _csv(rows, delimiter=";", encoding="latin-1")
    summary = import_companies(
        source=_put(content, f"companies.{kind}"),
        database=database_name,
        column_mapping={"Company": "name", "Web": "website", "Pays": "country"},
    )
    assert (summary.read, summary.inserted, summary.rejected) == (3, 3, 0)
    assert [c.name for c in _companies(db, summary.bulk_action_id or 0)] == [r["Company"] for r in rows]


def test_a_dry_run_counts_exactly_and_writes_nothing(db: CompanyDatabase, database_name: str) -> None:
    brand = _unique("dry")
    rows = [{"name": f"{brand} {n % 150} GmbH", "website": f"{brand}{n % 150}.de"} for n in range(300)]
    with db.session() as session:
        before = session.scalar(select(func.count()).select_from(Company))
    summary = import_companies(source=_put(_csv(rows), "dry.csv"), database=database_name, chunk_rows=100, dry_run=True)
    assert summary.dry_run and summary.bulk_action_id is None
    assert (summary.read, summary.inserted, summary.duplicates) == (300, 150, 150)  # duplicates across chunks too
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Company)) == before


def test_a_rerun_of_the_same_import_comes_from_its_checkpoints_and_duplicates_nothing(
    db: CompanyDatabase, database_name: str
) -> None:
    brand = _unique("rerun")
    rows = [{"name": f"{brand} {n} Oy", "website": f"{brand}{n}.fi"} for n in range(250)]
    source = _put(_csv(rows), "rerun.csv")
    first = import_companies(source=source, database=database_name, chunk_rows=100)
    again = import_companies(source=source, database=database_name, bulk_action_id=first.bulk_action_id)
    assert again.bulk_action_id == first.bulk_action_id
    assert (first.chunks, first.chunks_from_checkpoint, again.chunks_from_checkpoint) == (3, 0, 3)
    assert (
        (again.read, again.inserted, again.duplicates)
        == (first.read, first.inserted, first.duplicates)
        == (
            250,
            250,
            0,
        )
    )
    with db.session() as session:
        named = session.scalar(select(func.count()).select_from(Company).where(Company.name.like(f"{brand}%")))
    assert named == 250


def test_too_many_bad_rows_stop_the_import_and_say_so(db: CompanyDatabase, database_name: str) -> None:
    brand = _unique("bad")
    good = [{"name": f"{brand} {n}", "website": f"{brand}{n}.be"} for n in range(100)]
    bad = [{"name": "", "website": "file:///etc/passwd"} for _ in range(300)]
    summary = import_companies(
        source=_put(_csv(good + bad), "bad.csv"), database=database_name, chunk_rows=100, max_rejected_ratio=0.3
    )
    assert summary.status == "failed" and summary.reason is not None and "max_rejected_ratio" in summary.reason
    assert summary.inserted == 100  # the first chunk was within the limit; the chunk that passed it wrote nothing
    record = bulk_action(db, summary.bulk_action_id or 0)
    assert record.status is BulkActionStatus.FAILED and "max_rejected_ratio" in (record.status_reason or "")


def test_rows_with_the_wrong_number_of_fields_or_a_huge_cell_are_rejected_and_the_rest_imported(
    db: CompanyDatabase, database_name: str
) -> None:
    brand = _unique("ragged")
    huge = "x" * 5_000_000
    content = (
        "name,website,country\n"
        f"{brand} One,{brand}1.nl,NL\n"
        f"{brand} Two,{brand}2.nl\n"
        f"{brand} Three,{brand}3.nl,NL,extra\n"
        f"{brand} Four,{huge},NL\n"
        f"{brand} Five,{brand}5.nl,NL\n"
    ).encode()
    summary = import_companies(source=_put(content, "ragged.csv"), database=database_name, max_rejected_ratio=1.0)
    assert (summary.read, summary.inserted, summary.rejected) == (5, 2, 3)
    rejected = _read(f"{summary.source}.rejected-{summary.bulk_action_id}.csv").decode()
    assert huge not in rejected  # the cell is named and measured, never copied whole
    assert len(rejected) < 20_000


@pytest.mark.parametrize(
    ("content", "name", "options", "message"),
    [
        (b"", "empty.csv", {}, "empty"),
        (b"name,website\n", "header.csv", {}, "no rows"),
        (b"website,country\nacme.nl,NL\n", "noname.csv", {}, "no name column"),
        (b"\x00\x01\x02\x03binary", "data.bin", {}, "format"),
        ("name\nCaf\u00e9 Ltd\n".encode("latin-1"), "latin.csv", {"encoding": "utf-8"}, "latin-1"),
        (",".join(f"c{i}" for i in range(10_000)).encode() + b"\n" + b"x," * 9_999 + b"x\n", "wide.csv", {}, "columns"),
        (gzip.compress(b"name\n" + b"a" * 50_000_000), "bomb.csv.gz", {"max_bytes": 1_000_000}, "max_bytes"),
    ],
)
def test_bad_files_get_a_clear_error(
    database_name: str, content: bytes, name: str, options: dict[str, Any], message: str
) -> None:
    source = _put(content, name)
    with pytest.raises(Exception, match=message):
        import_companies(source=source, database=database_name, **options)


def test_a_missing_file_or_bucket_is_named(database_name: str) -> None:
    with pytest.raises(InputError, match="no file 'imports/nowhere.csv'"):
        import_companies(source="imports/nowhere.csv", database=database_name)
    # a remote-file-system block (fsspec) whose bucket does not exist; memory:// stands in for s3:// here
    RemoteFileSystem(basepath="memory://no-such-bucket/imports").save("missing-bucket", overwrite=True)
    with pytest.raises(InputError, match="no file 'x.csv' in storage 'remote-file-system/missing-bucket'"):
        import_companies(source="x.csv", storage="remote-file-system/missing-bucket", database=database_name)


def test_a_dry_run_of_an_import_being_resumed_is_refused(database_name: str) -> None:
    with pytest.raises(InputError, match="dry_run rehearses a new import"):
        import_companies(source="imports/any.csv", database=database_name, bulk_action_id=1, dry_run=True)
