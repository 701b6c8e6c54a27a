"""The import's checkpointed unit: one chunk of file rows normalised, matched and written in one transaction.

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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from prefect import task
from prefect.context import TaskRunContext
from prefect.utilities.annotations import quote
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from blocks.loading import load_database
from core.column_mapping import ColumnMap
from core.company_rows import NormalisedCompany, normalise_row
from core.importer import Mode, UpdateRule, apply_chunk

#: a rejected row as the rejected-rows file shows it: (row number, reason, the row's original values)
Rejected = tuple[int, str, dict[str, str | None]]


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


def _is_infrastructure_error(task: Any, task_run: Any, state: Any) -> bool:
    try:
        state.result()
    except (OperationalError, DBAPIError, ConnectionError):
        return True
    except BaseException:  # noqa: BLE001
        return False
    return False


def run_chunk(
    job: ChunkJob,
    session: Session,
    chunk_index: int,
    rows: Sequence[tuple[int, Mapping[str, str | None]]],
    problems: Sequence[Rejected],
    read_before: int,
    rejected_before: int,
) -> ChunkReport:
    """Normalise the chunk's rows and write them in ``session``, unless the rejected share would pass the limit.

    ``read_before`` and ``rejected_before`` are the rows read and rejected by the chunks before this one, so
    the limit is checked on the whole file so far, before this chunk writes anything.
    """
    accepted: list[tuple[int, NormalisedCompany]] = []
    rejected: list[Rejected] = list(problems)
    for number, row in rows:
        company = normalise_row(job.column_map.apply(row), number)
        if isinstance(company, NormalisedCompany):
            accepted.append((number, company))
        else:
            rejected.append((number, company.reason, dict(row)))
    rejected.sort(key=lambda r: r[0])
    read = len(rows) + len(problems)
    total_read, total_rejected = read_before + read, rejected_before + len(rejected)
    if total_read and total_rejected / total_read > job.max_rejected_ratio:
        return ChunkReport(chunk_index, read, applied=False, rejected=rejected)
    result = apply_chunk(session, job.import_id, accepted, mode=job.mode, update_fields=job.update_fields)
    return ChunkReport(
        chunk_index=chunk_index,
        read=read,
        inserted=result.inserted,
        updated=result.updated,
        duplicates=result.duplicates,
        unchanged=result.unchanged,
        fields_changed=result.fields_changed,
        rejected=rejected,
    )


@task(
    name="import-chunk",
    task_run_name="import-{job.import_id}-chunk-{chunk_index}",
    cache_key_fn=_chunk_key,
    persist_result=True,
    retries=3,
    retry_delay_seconds=[1, 4, 16],
    retry_condition_fn=_is_infrastructure_error,
)
def import_chunk(
    job: ChunkJob,
    chunk_index: int,
    rows: Sequence[tuple[int, Mapping[str, str | None]]],
    problems: Sequence[Rejected],
    read_before: int,
    rejected_before: int,
) -> ChunkReport:
    """One chunk in one committed transaction: ``run_chunk``, checkpointed."""
    with load_database(job.database).session() as session:
        return run_chunk(job, session, chunk_index, rows, problems, read_before, rejected_before)


def submit_chunk(
    job: ChunkJob,
    chunk_index: int,
    rows: Sequence[tuple[int, Mapping[str, str | None]]],
    problems: Sequence[Rejected],
    read_before: int,
    rejected_before: int,
) -> Any:
    """``import_chunk.submit`` with the rows and problems quoted (see the module docstring)."""
    return import_chunk.submit(job, chunk_index, quote(rows), quote(problems), read_before, rejected_before)
