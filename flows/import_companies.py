"""import_companies: a file of companies into the database, validated, deduplicated, chunked and resumable.

The flow only orchestrates: it opens the file from a storage block, maps its columns, records the import as a
bulk action, and hands the file's chunks one after another to the checkpointed ``import-chunk`` task
(``tasks.imports``), reading the next chunk while the last one is written.  Chunks are applied in file order
and one at a time, so a company named twice in the file (in any two chunks) is matched to the first one, and
SQLite's single writer is never fought over.  Memory holds two chunks at most, whatever the file's size.

What the import did is kept three ways: the bulk action's counts and live progress, one outcome row per
company the file named (so a selection can say "the companies of import N"), and a rejected-rows file next to
the source, with each bad row's number, reason and original values.
"""

from __future__ import annotations

import time
import uuid
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import ExitStack
from typing import Any, Literal

import polars as pl
from prefect import flow, get_run_logger
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.context import get_run_context
from prefect.futures import PrefectFuture
from prefect.task_runners import ThreadPoolTaskRunner

from blocks.loading import load_database
from blocks.storage import DEFAULT_STORAGE
from core.column_mapping import map_columns
from core.dedup_keys import fill_missing_keys
from core.errors import InputError
from core.importer import Mode, PreparedChunk, Rejected, UpdateRule, prepare_frame
from core.schema import BulkAction, BulkActionStatus
from core.store import create_bulk_action, find_bulk_action_by_flow_run
from flows.bulk_action import action_flow
from flows.bulk_record import take_over_from
from flows.engine import BULK_ACTION_HOOKS
from flows.import_report import FollowUp, ImportSummary, ImportTally, RejectedFile, report_import
from flows.import_source import ImportSource, open_source
from tasks.imports import ChunkJob, ChunkPreparer, ChunkReport, run_chunk, submit_chunk

ACTION = "import_companies"


@flow(
    name="import-companies",
    task_runner=ThreadPoolTaskRunner(max_workers=2),  # type: ignore[arg-type]
    validate_parameters=True,
    **BULK_ACTION_HOOKS,
)
def import_companies(
    source: str,
    storage: str = DEFAULT_STORAGE,
    file_format: Literal["auto", "csv", "ndjson", "json", "parquet"] = "auto",
    encoding: Literal["auto", "utf-8", "utf-8-sig", "latin-1"] = "auto",
    delimiter: str | None = None,
    column_mapping: dict[str, str] | None = None,
    mode: Mode = "skip",
    update_fields: dict[str, UpdateRule] | None = None,
    max_rejected_ratio: float = 0.2,
    max_bytes: int = 2_000_000_000,
    chunk_rows: int = 10_000,
    dry_run: bool = False,
    then: list[FollowUp] | None = None,
    database: str = "default",
    created_by: str = "prefect",
    bulk_action_id: int | None = None,
    takeover: bool = False,
) -> ImportSummary:
    """Import companies from a CSV, NDJSON, JSON or Parquet file (each may be gzipped) in a storage block.

    Args:
        source: the file's path inside ``storage`` (``imports/companies.csv.gz``).
        storage: ``<block-type>/<name>`` of a filesystem block: ``local-file-system/...`` (the default keeps
            files under ``.data/storage``) or ``remote-file-system/...`` holding an fsspec URL (``s3://...``).
        file_format: ``auto`` detects it from the name and the first bytes.
        encoding: CSV text encoding; ``auto`` takes UTF-8 (with or without BOM), else Latin-1.
        delimiter: CSV delimiter; empty to detect it.
        column_mapping: file column → company field (``{"Company": "name", "Web": "website"}``); common headers
            (``company_name``, ``domain``, ``url``, ``country_code``, ``category``...) are recognised without it.
        mode: ``skip`` leaves companies already in the database (or earlier in the file) as they are;
            ``update`` changes them as ``update_fields`` says, with the change history.
        update_fields: field → ``fill`` (only where empty) or ``overwrite``; empty: fill every field.
        max_rejected_ratio: stop (before writing the chunk that passes it) when more than this share of the
            rows read so far were rejected.
        max_bytes: refuse a file (or a gzip stream) larger than this once decompressed.
        chunk_rows: rows per checkpointed chunk.
        dry_run: read, check and match everything, and report what would happen; write nothing.
        then: actions to run afterwards on the import's companies, as child flow runs
            (``[{"action": "generate_embeddings"}]``).
        database: name of the company-database block.
        created_by: who asked, recorded on the import.
        bulk_action_id: resume this import (the same file); the settings it started with apply.
        takeover: with ``bulk_action_id``, take the import over from a flow run whose process is gone.
    """
    _check_parameters(max_rejected_ratio, chunk_rows, max_bytes)
    if dry_run and bulk_action_id is not None:
        raise InputError("dry_run rehearses a new import; an import being resumed has already written its rows")
    started = time.perf_counter()
    logger = get_run_logger()
    db = load_database(database)
    flow_run_id = str(get_run_context().flow_run.id)  # type: ignore[union-attr]
    record, settings = _open_record(db, bulk_action_id, flow_run_id, takeover, locals())
    with ExitStack() as stack:
        opened = stack.enter_context(open_source(settings))
        column_map = map_columns(opened.columns, settings["column_mapping"])
        if column_map.unmapped:
            logger.warning("columns not imported (no company field): %s", ", ".join(column_map.unmapped))
        if dry_run:
            tally = _rehearse(db, opened, column_map, settings)
            return report_import(None, settings, opened, column_map, tally, None, [], started, dry_run=True)
        import_id = record if record is not None else _create_record(db, settings, flow_run_id, created_by)
        with db.session() as session:
            fill_missing_keys(session)
        job = ChunkJob(
            import_id=import_id,
            token=settings["token"],
            database=database,
            column_map=column_map,
            mode=settings["mode"],
            update_fields=settings["update_fields"],
            max_rejected_ratio=settings["max_rejected_ratio"],
        )
        rejected = stack.enter_context(RejectedFile(settings["storage"], settings["source"], import_id, opened.columns))
        tally = _run_chunks(db, job, opened, rejected)
    follow_ups = [] if tally.stopped else _follow_up(then or [], import_id, database, created_by)
    return report_import(import_id, settings, opened, column_map, tally, rejected, follow_ups, started)


def _check_parameters(max_rejected_ratio: float, chunk_rows: int, max_bytes: int) -> None:
    if not 0.0 <= max_rejected_ratio <= 1.0:
        raise InputError("max_rejected_ratio must be between 0 and 1")
    if not 100 <= chunk_rows <= 1_000_000:
        raise InputError("chunk_rows must be between 100 and 1,000,000")
    if max_bytes < 1:
        raise InputError("max_bytes must be positive")


_SETTINGS = (
    "source",
    "storage",
    "file_format",
    "encoding",
    "delimiter",
    "column_mapping",
    "mode",
    "update_fields",
    "max_rejected_ratio",
    "max_bytes",
    "chunk_rows",
)


def _open_record(
    db: Any, bulk_action_id: int | None, flow_run_id: str, takeover: bool, parameters: dict[str, Any]
) -> tuple[int | None, dict[str, Any]]:
    """The import to resume (a Prefect retry of this flow run, or ``bulk_action_id``) with its stored
    settings, or None and the settings of a new import."""
    with db.session() as session:
        record = find_bulk_action_by_flow_run(session, flow_run_id)
        if record is None and bulk_action_id is not None:
            record = session.get(BulkAction, bulk_action_id)
            if record is None or record.action != ACTION:
                raise InputError(f"there is no import {bulk_action_id} in this database")
            if record.flow_run_id and record.flow_run_id != flow_run_id:
                # an import holds no provider slots: nothing to free (tag None)
                take_over_from(record.flow_run_id, f"import {record.id}", flow_run_id, takeover, None)
            record.flow_run_id = flow_run_id
        if record is not None:
            record.status = BulkActionStatus.RUNNING
            stored = dict(record.parameters or {})
            return record.id, {**stored, "dry_run": False}
    settings = {name: parameters[name] for name in _SETTINGS}
    settings["token"] = uuid.uuid4().hex
    return None, settings


def _create_record(db: Any, settings: dict[str, Any], flow_run_id: str, created_by: str) -> int:
    with db.session() as session:
        record = create_bulk_action(
            session, action=ACTION, company_ids=[], created_by=created_by, flow_run_id=flow_run_id, parameters=settings
        )
        record.status = BulkActionStatus.RUNNING
        session.flush()
        return record.id


def _numbered(opened: ImportSource) -> Iterator[tuple[int, pl.DataFrame, list[int], list[Rejected]]]:
    """(chunk index, its rows as a frame, their row numbers, its problem rows) for every chunk of the file."""
    for chunk in opened.chunks():
        problems = [(p.row_number, p.reason, dict(p.values)) for p in chunk.problems]
        yield chunk.index, chunk.frame, chunk.row_numbers.to_list(), problems


def _run_chunks(db: Any, job: ChunkJob, opened: ImportSource, rejected: RejectedFile) -> ImportTally:
    """Each chunk through the task in file order; the next chunk is read and prepared while one is written."""
    tally = ImportTally()
    progress = create_progress_artifact(0.0, description=f"import {job.import_id}: share of the file read")
    chunks = _numbered(opened)
    with ChunkPreparer() as preparer:
        ahead: deque[tuple[int, Future[PreparedChunk]]] = deque()

        def read_ahead() -> None:
            """Read chunks and start preparing them until ``preparer.workers`` are on their way."""
            while len(ahead) < preparer.workers:
                chunk = next(chunks, None)
                if chunk is None:
                    return
                index, frame, numbers, problems = chunk
                ahead.append((index, preparer.submit(job.column_map, frame, numbers, problems)))

        read_ahead()
        writing: PrefectFuture[ChunkReport] | None = None
        while ahead:
            index, preparing = ahead.popleft()
            prepared = preparing.result()
            read_ahead()  # the next chunks are prepared in processes of their own while this one is written
            if writing is not None and not _collect(db, job, writing, tally, rejected, progress, opened):
                return tally
            writing = submit_chunk(job, index, prepared, tally.read, tally.rejected)
        if writing is not None and not _collect(db, job, writing, tally, rejected, progress, opened):
            return tally
    tally.finish(db, job.import_id)
    return tally


def _collect(
    db: Any,
    job: ChunkJob,
    future: PrefectFuture[ChunkReport],
    tally: ImportTally,
    rejected: RejectedFile,
    progress: Any,
    opened: ImportSource,
) -> bool:
    """Add a finished chunk to the tally; False when the import must stop there."""
    report = future.result()
    state = future.state
    tally.add(report, from_checkpoint=state.name == "Cached")  # a chunk a run before this one had written
    rejected.write(report.rejected)
    if not report.applied:
        tally.stop(db, job.import_id, job.max_rejected_ratio)
        return False
    tally.store(db, job.import_id)
    update_progress_artifact(progress, opened.percent_read())
    return True


def _rehearse(db: Any, opened: ImportSource, column_map: Any, settings: dict[str, Any]) -> ImportTally:
    """The whole import in one transaction that is rolled back: exact counts, nothing written."""
    tally = ImportTally()
    with db.rehearsal_session() as session:
        record = create_bulk_action(session, action=ACTION, company_ids=[], created_by="dry run")
        session.flush()  # a record that only this transaction sees: the rollback takes it away with the rest
        job = ChunkJob(
            import_id=record.id,
            token="dry-run",
            database="",
            column_map=column_map,
            mode=settings["mode"],
            update_fields=settings["update_fields"],
            max_rejected_ratio=settings["max_rejected_ratio"],
        )
        fill_missing_keys(session)
        for index, frame, numbers, problems in _numbered(opened):
            prepared = prepare_frame(column_map, frame, numbers, problems)
            report = run_chunk(job, session, index, prepared, tally.read, tally.rejected)
            tally.add(report, from_checkpoint=False)
            if not report.applied:
                tally.stopped = True
                break
    return tally


def _follow_up(then: list[FollowUp], import_id: int, database: str, created_by: str) -> list[Any]:
    """Run each ``then`` action on the import's companies, as linked child flow runs, one after another."""
    results = []
    for step in then:
        parameters: dict[str, Any] = {
            "selection": {"from_action": {"bulk_action_id": import_id, "outcome": step.outcome}},
            "database": database,
            "created_by": created_by,
            **step.parameters,
        }
        if step.provider:
            parameters["provider"] = step.provider
        results.append(action_flow(step.action)(**parameters))
    return results


if __name__ == "__main__":
    import_companies(source="imports/companies.csv")
