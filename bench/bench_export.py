"""The export of a million scored companies to CSV.gz: throughput, against a bare dump, and memory.

Part of ``make bench-scale`` (seeding a million companies and eleven million scores takes minutes).

* ``export_rows_per_second``: ``export_companies`` of 1,000,000 companies (a filter selection) with the company
  columns and every score column, CSV gzip, in a flow-run process of its own, over the flow call's wall time.
* ``export_vs_bare_dump``: the same SELECT (``core.exporter.export_query``) streamed by SQLAlchemy into polars
  pages written with ``write_csv`` into one gzip stream, nothing else ÷ the export's time.
* ``export_peak_rss_mb``: the export's flow-run process's own peak RSS.
"""

from __future__ import annotations

import gzip
import time

from bench.environment import WORKDIR
from bench.subprocess_flow import run_flow_process

COMPANIES = 1_000_000
COLUMNS = ["company", "scores"]
PAGE_ROWS = 50_000
DATABASE = "bench-export"  # a database of its own: exactly the million, whatever other benchmarks seeded


def _seed_scores() -> None:
    """Eleven score rows per company, written by the database itself (11 INSERT ... SELECT)."""
    from sqlalchemy import text

    from blocks.loading import load_database
    from core.rubric import CRITERIA, TOTAL_CRITERION

    with load_database(DATABASE).session() as session:
        for n, key in enumerate([*[c.key for c in CRITERIA], TOTAL_CRITERION]):
            score = "(id * 7) % 51" if key == TOTAL_CRITERION else f"((id + {n}) * 3) % 6"
            session.execute(
                text(
                    "INSERT INTO company_scores (company_id, bulk_action_id, criterion, level, score, reasoning, "
                    "provider, model, prompt_tokens, completion_tokens, input_sha256, scored_at) "
                    f"SELECT id, NULL, :key, 'Medium', {score}, NULL, 'bench', 'bench-model', 0, 0, '', "
                    "'2026-11-30 00:00:00.000000' FROM companies"
                ),
                {"key": key},
            )


def _seed_companies() -> None:
    from blocks.database import CompanyDatabase
    from blocks.loading import load_database
    from core.synthetic import seed_companies

    CompanyDatabase(url=f"sqlite:///{WORKDIR / 'export.db'}").save(DATABASE, overwrite=True)  # type: ignore[arg-type]
    started = time.perf_counter()
    with load_database(DATABASE).session() as session:
        seed_companies(session, COMPANIES, seed=9021, chunk_size=5_000)
    _seed_scores()
    print(f"export: seeded {COMPANIES:,} companies and their scores in {time.perf_counter() - started:.0f} s")


def _bare_dump() -> float:
    import polars as pl

    from blocks.loading import load_database
    from core.exporter import expand_columns, export_query
    from core.file_writer import DEFAULT_GZIP_LEVEL
    from core.selection import Selection

    db = load_database(DATABASE)
    started = time.perf_counter()
    with db.read_session() as session:
        plan = export_query(session, expand_columns(COLUMNS, results=False), selection=Selection(filter={}))
    with (
        db.get_engine().connect() as connection,
        open(WORKDIR / "bare.csv.gz", "wb") as raw,
        gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=DEFAULT_GZIP_LEVEL) as stream,
    ):
        result = connection.execution_options(stream_results=True, yield_per=PAGE_ROWS).execute(plan.statement)
        for n, page in enumerate(result.partitions(PAGE_ROWS)):
            pl.DataFrame(page, schema=plan.schema, orient="row").write_csv(stream, include_header=n == 0)
    return time.perf_counter() - started


def run() -> dict[str, float]:
    _seed_companies()
    setup = "from flows.export_companies import export_companies"
    call = (
        f"export_companies(selection={{'filter': {{}}}}, columns={COLUMNS!r}, page_rows={PAGE_ROWS}, "
        f"database={DATABASE!r})"
    )
    measured = run_flow_process(setup, call, name="export")
    assert measured.result is not None and measured.result["rows"] == COMPANIES, measured.result
    bare = _bare_dump()
    print(
        f"export: {COMPANIES:,} rows in {measured.seconds:.2f} s (bare dump {bare:.2f} s), "
        f"peak RSS {measured.peak_rss_mb:.0f} MB"
    )
    return {
        "export_rows_per_second": COMPANIES / measured.seconds,
        "export_vs_bare_dump": bare / measured.seconds,
        "export_peak_rss_mb": measured.peak_rss_mb,
        "export_seconds": measured.seconds,
        "export_bare_dump_seconds": bare,
    }
