"""export_companies: a selection, or one bulk action's results, streamed into a file in a storage block.

The rows come from one SELECT (``core.exporter``) that the database streams in pages (``stream_results``), each
page becomes a polars frame and goes straight into the file writer (``core.file_writer``: CSV, NDJSON, JSON or
Parquet, optionally gzip, CSV cells neutralised against formula injection).  Memory holds one page, whatever the
export's size, and a bulk action's results of any size can be exported: nobody has to scrape the UI.

An export is a read and is cheap to repeat, so it is one task (retried on infrastructure errors), not a set of
checkpoints: a crash writes the whole file again.  It is recorded as a bulk action of type ``export_companies``
(what was asked, how many rows, where the file went) and reported as a link artifact.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from prefect import flow, get_run_logger
from prefect.artifacts import create_link_artifact
from prefect.context import get_run_context

from blocks.loading import load_database
from blocks.storage import DEFAULT_STORAGE, file_location
from core.errors import InputError
from core.exporter import expand_columns, export_query
from core.schema import BulkAction, BulkActionStatus
from core.selection import Selection, selection_of
from core.store import create_bulk_action, set_status
from flows.action_end import artifact_key
from tasks.exports import FileFormat, write_export

ACTION = "export_companies"
_EXTENSIONS = {"csv": "csv", "ndjson": "ndjson", "json": "json", "parquet": "parquet"}


@dataclass(frozen=True)
class ExportSummary:
    bulk_action_id: int
    rows: int
    columns: list[str]
    location: str
    file_format: str
    gzip: bool
    score_model: str | None
    seconds: float


@flow(name="export-companies", validate_parameters=True)
def export_companies(
    selection: Selection | None = None,
    company_ids: list[int] | None = None,
    results_of: int | None = None,
    columns: list[str] | None = None,
    file_format: FileFormat = "csv",
    gzip: bool = True,
    destination: str | None = None,
    storage: str = DEFAULT_STORAGE,
    score_model: str | None = None,
    page_rows: int = 50_000,
    database: str = "default",
    created_by: str = "prefect",
) -> ExportSummary:
    """Write the selected companies (or one bulk action's results) to a file, streamed page by page.

    Args:
        selection: which companies: explicit ids, a filter, another action's companies (see the README).
        company_ids: shorthand for ``selection={"ids": [...]}``.
        results_of: export this bulk action's results instead: each company's outcome, error and output.
        columns: column names or groups: ``company``, ``enrichment``, ``review``, ``classification`` (sector,
            subsector, business model and how they were made), ``scores`` (each criterion and
            the total), ``embeddings`` (the models present), ``outcome``; single columns such as ``name`` or
            ``score_total``.  Empty: company, enrichment, review, score_total, embeddings (and outcome).
        file_format: csv, ndjson, json or parquet.
        gzip: compress the file (not for parquet, which compresses itself).
        destination: the file's path in ``storage``; empty: ``exports/export-<id>.<format>[.gz]``.
        storage: ``<block-type>/<name>`` of a filesystem block (local by default, or an fsspec URL).
        score_model: ``<provider>:<model>`` whose scores to show; empty: the most recently used.
        page_rows: rows per page read from the database and written to the file.
        database: name of the company-database block.
        created_by: who asked, recorded on the export.
    """
    started = time.perf_counter()
    chosen = selection_of(company_ids, selection)
    if not 1_000 <= page_rows <= 1_000_000:
        raise InputError("page_rows must be between 1,000 and 1,000,000")
    if gzip and file_format == "parquet":
        raise InputError("parquet compresses itself: set gzip=false")
    names = expand_columns(columns, results=results_of is not None)
    db = load_database(database)
    with db.read_session() as session:
        plan = export_query(session, names, selection=chosen, results_of=results_of, score_model=score_model)
    flow_run_id = str(get_run_context().flow_run.id)  # type: ignore[union-attr]
    with db.session() as session:
        record = create_bulk_action(
            session,
            action=ACTION,
            company_ids=[],
            created_by=created_by,
            flow_run_id=flow_run_id,
            parameters={
                "selection": chosen.model_dump(mode="json", exclude_none=True) if chosen else None,
                "results_of": results_of,
                "columns": names,
                "file_format": file_format,
                "gzip": gzip,
                "storage": storage,
                "score_model": ":".join(plan.score_model) if plan.score_model else None,
            },
        )
        session.flush()
        export_id = record.id
    path = destination or f"exports/export-{export_id}.{_EXTENSIONS[file_format]}{'.gz' if gzip else ''}"
    rows = write_export(database, plan, storage, path, file_format, gzip, page_rows)
    with db.session() as session:
        set_status(session, export_id, BulkActionStatus.COMPLETED)
        done = session.get(BulkAction, export_id)
        assert done is not None
        done.total = done.processed = done.succeeded = rows
        done.parameters = {**(done.parameters or {}), "destination": path}
    location = file_location(storage, path)
    summary = ExportSummary(
        bulk_action_id=export_id,
        rows=rows,
        columns=names,
        location=location,
        file_format=file_format,
        gzip=gzip,
        score_model=":".join(plan.score_model) if plan.score_model else None,
        seconds=round(time.perf_counter() - started, 3),
    )
    create_link_artifact(
        location,
        link_text=f"{rows:,} rows, {len(names)} columns ({file_format}{', gzip' if gzip else ''})",
        key=artifact_key(ACTION, export_id, "file"),
        description=f"export {export_id}: {', '.join(names)}",
    )
    get_run_logger().info("export %d: %d rows to %s in %.1f s", export_id, rows, location, summary.seconds)
    return summary
