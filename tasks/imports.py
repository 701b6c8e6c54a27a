"""The import's checkpointed unit: one chunk of prepared rows matched and written in one transaction.

Rows are prepared (mapped and normalised, ``core.importer.prepare_chunk``) before the task, by a
``ChunkPreparer`` that works on the next chunk in a process of its own while this one is written.

The task's cache key is the import's own token and the chunk's index, never the rows: hashing 10,000 rows per
chunk would cost more than writing them, and the same import reading the same file always cuts the same
chunks.  A rerun of the import (a Prefect retry of its flow run, or a new run with ``bulk_action_id``) reads the
file again, and every chunk whose task had completed comes back from its checkpoint without touching the
database.  A chunk whose process died after its commit but before its checkpoint is applied a second time,
which ``core.importer`` makes harmless (nothing is inserted twice, the counts come out the same).

Rows reach the task wrapped in ``quote``: Prefect would otherwise walk every row and value looking for futures
to resolve.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import polars as pl
from prefect import task
from prefect.context import TaskRunContext
from prefect.utilities.annotations import quote
from sqlalchemy.orm import Session

from blocks.loading import load_database
from core.column_mapping import ColumnMap
from core.importer import Mode, PreparedChunk, Rejected, UpdateRule, apply_chunk, collection_paused, prepare_frame
from tasks.batch import retry_on_infrastructure_error


@dataclass(frozen=True)
class ChunkReport:
    """What one chunk did (and what its checkpoint holds)."""

    chunk_index: int
    read: int
    inserted: int = 0
    updated: int = 0
    duplicates: int = 0
    unchanged: int = 0
    fields_changed: int = 0
    #: False when the chunk would have taken the rejected share past ``max_rejected_ratio``: nothing written
    applied: bool = True
    rejected: list[Rejected] = field(default_factory=list)


@dataclass(frozen=True)
class ChunkJob:
    """What every chunk of one import shares."""

    import_id: int
    token: str  # unique to this import: the checkpoints' key (import ids repeat across databases)
    database: str
    column_map: ColumnMap
    mode: Mode
    update_fields: dict[str, UpdateRule] | None
    max_rejected_ratio: float


def _chunk_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    job: ChunkJob = parameters["job"]
    return f"import-{job.token}-chunk-{parameters['chunk_index']}"


def run_chunk(
    job: ChunkJob,
    session: Session,
    chunk_index: int,
    prepared: PreparedChunk,
    read_before: int,
    rejected_before: int,
) -> ChunkReport:
    """Write a prepared chunk in ``session``, unless its rejected rows would take the share past the limit.

    ``read_before`` and ``rejected_before`` are the rows read and rejected by the chunks before this one, so
    the limit is checked on the whole file so far, before this chunk writes anything.
    """
    total_read, total_rejected = read_before + prepared.read, rejected_before + len(prepared.rejected)
    if total_read and total_rejected / total_read > job.max_rejected_ratio:
        return ChunkReport(chunk_index, prepared.read, applied=False, rejected=prepared.rejected)
    with collection_paused():
        result = apply_chunk(session, job.import_id, prepared.accepted, mode=job.mode, update_fields=job.update_fields)
    return ChunkReport(
        chunk_index=chunk_index,
        read=prepared.read,
        inserted=result.inserted,
        updated=result.updated,
        duplicates=result.duplicates,
        unchanged=result.unchanged,
        fields_changed=result.fields_changed,
        rejected=prepared.rejected,
    )


@task(
    name="import-chunk",
    task_run_name="import-{job.import_id}-chunk-{chunk_index}",
    cache_key_fn=_chunk_key,
    persist_result=True,
    retries=3,
    retry_delay_seconds=[1, 4, 16],
    retry_condition_fn=retry_on_infrastructure_error,
)
def import_chunk(
    job: ChunkJob, chunk_index: int, prepared: PreparedChunk, read_before: int, rejected_before: int
) -> ChunkReport:
    """One chunk in one committed transaction: ``run_chunk``, checkpointed."""
    with load_database(job.database).session() as session:
        return run_chunk(job, session, chunk_index, prepared, read_before, rejected_before)


def submit_chunk(
    job: ChunkJob, chunk_index: int, prepared: PreparedChunk, read_before: int, rejected_before: int
) -> Any:
    """``import_chunk.submit`` with the prepared rows quoted (see the module docstring)."""
    # Prefect unwraps ``quote`` before calling the task; its stubs do not know that
    return import_chunk.submit(job, chunk_index, quote(prepared), read_before, rejected_before)  # type: ignore[call-overload]


class ChunkPreparer:
    """Prepares the next chunks (``core.importer.prepare_frame``) in processes of their own while one is written.

    Normalising a row (its website parsed, its domain, country and name key) costs more CPU than matching and
    writing it (about 0.7 s against 0.35 s a chunk of 10,000 here), so ``workers`` processes prepare the next
    chunks while this process writes.  One is the default: on the 2-core reference machine, which also runs the
    Prefect server, two were no faster (100,000 rows in 9.6 s against 8.8-9.3 s, measured); give a bigger
    worker more.  The first chunk is prepared here: a file of one chunk never pays for another interpreter.
    """

    def __init__(self, workers: int = 1) -> None:
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None
        self._chunks = 0

    def __enter__(self) -> ChunkPreparer:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    def submit(
        self, column_map: ColumnMap, frame: pl.DataFrame, row_numbers: list[int], problems: list[Rejected]
    ) -> Future[PreparedChunk]:
        self._chunks += 1
        if self._chunks == 1:
            done: Future[PreparedChunk] = Future()
            done.set_result(prepare_frame(column_map, frame, row_numbers, problems))
            return done
        if self._pool is None:
            context = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=context)
        return self._pool.submit(prepare_frame, column_map, frame, row_numbers, problems)
