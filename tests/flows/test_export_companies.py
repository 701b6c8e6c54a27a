"""export_companies on a real Prefect server, SQLite and PostgreSQL: formats, columns, results, injection."""

from __future__ import annotations

import csv
import gzip
import io
import json

import polars as pl
import pytest
from sqlalchemy import update

from blocks.database import CompanyDatabase
from blocks.storage import DEFAULT_STORAGE, open_file
from core.errors import InputError
from core.rubric import CRITERIA
from core.schema import Company
from flows.export_companies import ExportSummary, export_companies
from flows.score_llm_adoption import score_llm_adoption
from flows.update_status import update_status
from tests.helpers import seed


def _read(path: str) -> bytes:
    with open_file(DEFAULT_STORAGE, path, "rb") as stream:
        return stream.read()


def _path(summary: ExportSummary) -> str:
    return summary.location.split("/storage/", 1)[1]


def test_a_selection_is_exported_with_scores_review_and_embedding_columns_to_csv_gz(
    db: CompanyDatabase, database_name: str
) -> None:
    ids = seed(db, 6, seed_value=13001)
    scored = score_llm_adoption(company_ids=ids[:4], database=database_name)
    assert scored.succeeded == 4  # type: ignore[union-attr]
    update_status(company_ids=ids[:1], needs_review=True, review_reason="check", database=database_name)

    summary = export_companies(company_ids=ids, columns=["company", "review", "scores"], database=database_name)

    assert summary.rows == 6 and summary.gzip and summary.score_model == "local-rules:local-rules-v1"
    rows = list(csv.DictReader(io.StringIO(gzip.decompress(_read(_path(summary))).decode())))
    assert [int(r["id"]) for r in rows] == sorted(ids)
    assert list(rows[0])[:3] == ["id", "name", "website"]
    assert {f"score_{c.key}" for c in CRITERIA} | {"score_total"} <= set(rows[0])
    by_id = {int(r["id"]): r for r in rows}
    assert all(by_id[i]["score_total"] != "" for i in ids[:4]) and by_id[ids[5]]["score_total"] == ""
    total = sum(int(by_id[ids[0]][f"score_{c.key}"]) for c in CRITERIA)
    assert int(by_id[ids[0]]["score_total"]) == total
    assert by_id[ids[0]]["needs_review"] == "true" and by_id[ids[0]]["review_reason"] == "check"


def test_a_bulk_action_s_results_are_exported_with_outcome_and_error(db: CompanyDatabase, database_name: str) -> None:
    ids = seed(db, 5, seed_value=13002)
    with db.session() as session:
        session.execute(update(Company).where(Company.id == ids[2]).values(website="javascript:alert(1)"))
    scored = score_llm_adoption(company_ids=ids, database=database_name)
    summary = export_companies(
        results_of=scored.bulk_action_id,  # type: ignore[union-attr]
        columns=["id", "name", "outcome", "score_total"],
        file_format="ndjson",
        gzip=False,
        database=database_name,
    )
    rows = [json.loads(line) for line in _read(_path(summary)).decode().splitlines()]
    assert [r["id"] for r in rows] == ids  # the action's own order
    failed = [r for r in rows if r["outcome"] == "failed"]
    assert [r["id"] for r in failed] == [ids[2]] and "not an http(s) URL" in failed[0]["outcome_detail"]
    assert failed[0]["score_total"] is None


@pytest.mark.parametrize(("file_format", "gzip_it"), [("json", True), ("parquet", False), ("csv", False)])
def test_every_format_round_trips_and_csv_cells_cannot_become_formulas(
    db: CompanyDatabase, database_name: str, file_format: str, gzip_it: bool
) -> None:
    ids = seed(db, 3, seed_value=13003)
    hostile = "=cmd|' /C calc'!A0"
    with db.session() as session:
        session.execute(update(Company).where(Company.id == ids[0]).values(name=hostile, priority=-5))
    summary = export_companies(
        company_ids=ids, columns=["id", "name", "priority"], file_format=file_format, gzip=gzip_it,  # type: ignore[arg-type]
        database=database_name,
    )  # fmt: skip
    content = _read(_path(summary))
    if gzip_it:
        content = gzip.decompress(content)
    if file_format == "json":
        rows = json.loads(content)
    elif file_format == "parquet":
        rows = pl.read_parquet(io.BytesIO(content)).to_dicts()
    else:
        rows = list(csv.DictReader(io.StringIO(content.decode())))
    first = next(r for r in rows if int(r["id"]) == ids[0])
    if file_format == "csv":
        assert first["name"] == "'" + hostile and first["priority"] == "-5"  # a number stays a number
    else:
        assert first["name"] == hostile and first["priority"] == -5  # only spreadsheets evaluate formulas


def test_bad_export_requests_are_refused(database_name: str) -> None:
    with pytest.raises(InputError, match="unknown export column 'salary'"):
        export_companies(company_ids=[1], columns=["salary"], database=database_name)
    with pytest.raises(InputError, match="results_of"):
        export_companies(company_ids=[1], columns=["outcome"], database=database_name)
    with pytest.raises(InputError, match="say what to export"):
        export_companies(database=database_name)
    with pytest.raises(InputError, match="parquet compresses itself"):
        export_companies(company_ids=[1], file_format="parquet", gzip=True, database=database_name)
