"""The import: throughput against a bare load, memory, a kill and a rerun, and the quality of duplicate detection.

* ``import_rows_per_second``: a 100,000-row CSV.gz (10% in-file duplicates, 5% invalid rows,
  ``bench/import_files.py``) imported into a SQLite database of its own that holds 100,000 companies, by
  ``import_companies`` in a flow-run process of its own (``bench/subprocess_flow.py``), over the flow call's
  own wall time.
* ``import_vs_bare_insert``: a bare load of the same file into a copy of the same database (``pl.read_csv`` and
  one Core ``insert`` executemany of the rows as they are, no checks, no duplicates found) ÷ the import's time.
* ``import_peak_rss_mb``: the import's flow-run process's own peak RSS.
* ``import_resume_duplicates``: the same import into another copy, killed (SIGKILL) once half the rows are
  recorded, then rerun with ``bulk_action_id`` and ``takeover``: companies in the database beyond what the
  uninterrupted import inserted.
* ``import_dedup_precision`` / ``import_dedup_recall``: a 20,000-row file of known duplicates (domain and name
  variants) into an empty database; a row counts as found a duplicate when it was neither inserted nor
  rejected.
"""

from __future__ import annotations

import shutil
import time
from typing import Any

from bench.environment import WORKDIR
from bench.import_files import ImportFile, build
from bench.subprocess_flow import run_flow_process

ROWS = 100_000
EXISTING = 100_000
DEDUP_ROWS = 20_000


def _put(path: str, content: bytes) -> None:
    from blocks.storage import DEFAULT_STORAGE, open_file

    with open_file(DEFAULT_STORAGE, path, "wb") as stream:
        stream.write(content)


def _database(name: str, path: str) -> None:
    from blocks.database import CompanyDatabase

    CompanyDatabase(url=f"sqlite:///{path}").save(name, overwrite=True)  # type: ignore[arg-type]


def _import_call(source: str, database: str, extra: str = "") -> tuple[str, str]:
    setup = "from flows.import_companies import import_companies"
    call = f"import_companies(source={source!r}, database={database!r}, created_by='bench'{extra})"
    return setup, call


def _bare_load(content: bytes, database_path: str) -> float:
    """polars read + one Core insert executemany of the rows as they are: the floor an import is held to."""
    import io

    import polars as pl
    from sqlalchemy import insert

    from core.db import get_engine
    from core.schema import Company

    started = time.perf_counter()
    frame = pl.read_csv(io.BytesIO(content), infer_schema=False)
    rows = [
        {
            "name": r["company_name"],
            "website": r["url"],
            "country": r["country"],
            "industry": r["category"],
            "nace_code": r["nace"],
            "activity_description": r["description"],
        }
        for r in frame.iter_rows(named=True)
    ]
    with get_engine(f"sqlite:///{database_path}").begin() as connection:
        connection.execute(insert(Company), rows)
    return time.perf_counter() - started


def _company_count(database: str) -> int:
    from sqlalchemy import func, select

    from blocks.loading import load_database
    from core.schema import Company

    with load_database(database).read_session() as session:
        return int(session.scalar(select(func.count()).select_from(Company)) or 0)


def _resume(source: str, database: str, expected_companies: int) -> int:
    """Kill the import at about half way, rerun it; returns the companies duplicated by the kill and rerun."""
    from sqlalchemy import select

    from blocks.loading import load_database
    from core.schema import BulkAction

    db = load_database(database)
    state: dict[str, Any] = {}

    def half_way() -> bool:
        with db.read_session() as session:
            record = session.scalars(
                select(BulkAction).where(BulkAction.action == "import_companies").order_by(BulkAction.id.desc())
            ).first()
            if record is not None:
                state["id"] = record.id
                return record.processed >= ROWS // 2
        return False

    setup, call = _import_call(source, database)
    killed = run_flow_process(setup, call, name="import-killed", on_poll=half_way, poll_seconds=0.05)
    if killed.result is not None or "id" not in state:
        raise RuntimeError("the import finished before it could be killed half way")
    setup, call = _import_call(source, database, f", bulk_action_id={state['id']}, takeover=True")
    rerun = run_flow_process(setup, call, name="import-rerun")
    assert rerun.result is not None and rerun.result["status"] == "completed", rerun.result
    return _company_count(database) - expected_companies


def _dedup_quality(file: ImportFile) -> tuple[float, float]:
    from sqlalchemy import select

    from blocks.loading import load_database
    from core.schema import BulkActionOutcome, OutcomeStatus

    database_path = WORKDIR / "dedup.db"
    _database("bench-dedup", str(database_path))
    _put("imports/dedup.csv.gz", file.content)
    setup, call = _import_call("imports/dedup.csv.gz", "bench-dedup", ", max_rejected_ratio=1.0")
    done = run_flow_process(setup, call, name="import-dedup")
    assert done.result is not None
    with load_database("bench-dedup").read_session() as session:
        inserted_rows = set(
            session.scalars(
                select(BulkActionOutcome.position).where(
                    BulkActionOutcome.bulk_action_id == done.result["bulk_action_id"],
                    BulkActionOutcome.detail == "inserted",
                    BulkActionOutcome.status == OutcomeStatus.SUCCEEDED,
                )
            )
        )
    flagged = set(range(1, file.rows + 1)) - inserted_rows - file.invalid_rows
    true_positives = len(flagged & file.duplicate_rows)
    precision = true_positives / len(flagged) if flagged else 1.0
    recall = true_positives / len(file.duplicate_rows) if file.duplicate_rows else 1.0
    print(f"import dedup: {len(flagged)} rows found duplicate, {len(file.duplicate_rows)} true duplicates")
    return precision, recall


def _seed_existing(path: str) -> None:
    """The database the import meets: exactly 100,000 companies with their keys, whatever ran before."""
    from blocks.loading import load_database
    from core.synthetic import seed_companies

    _database("bench-import", path)
    db = load_database("bench-import")
    with db.session() as session:
        seed_companies(session, EXISTING, seed=9012)
    with db.get_engine().connect() as connection:  # everything in the main file before it is copied
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


def run() -> dict[str, float]:
    import_path = WORKDIR / "import.db"
    _seed_existing(str(import_path))
    for copy in ("bare.db", "resume.db"):
        shutil.copyfile(import_path, WORKDIR / copy)
    _database("bench-resume", str(WORKDIR / "resume.db"))

    file = build(ROWS, duplicate_share=0.10, invalid_share=0.05, seed=9013)
    _put("imports/bench.csv.gz", file.content)
    setup, call = _import_call("imports/bench.csv.gz", "bench-import")
    measured = run_flow_process(setup, call, name="import")
    assert measured.result is not None and measured.result["status"] == "completed", measured.result
    result = measured.result
    print(
        f"import: {result['read']} rows, {result['inserted']} inserted, {result['duplicates']} duplicates, "
        f"{result['rejected']} rejected in {measured.seconds:.2f} s; peak RSS {measured.peak_rss_mb:.0f} MB"
    )
    bare = _bare_load(file.content, str(WORKDIR / "bare.db"))
    print(f"import: bare load {bare:.2f} s")
    duplicates = _resume("imports/bench.csv.gz", "bench-resume", EXISTING + int(result["inserted"]))
    precision, recall = _dedup_quality(build(DEDUP_ROWS, duplicate_share=0.2, invalid_share=0.0, seed=9014))
    return {
        "import_rows_per_second": ROWS / measured.seconds,
        "import_vs_bare_insert": bare / measured.seconds,
        "import_peak_rss_mb": measured.peak_rss_mb,
        "import_resume_duplicates": float(duplicates),
        "import_dedup_precision": precision,
        "import_dedup_recall": recall,
        "import_seconds": measured.seconds,
        "import_bare_insert_seconds": bare,
    }
