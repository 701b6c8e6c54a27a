"""Queries and writes of the company store, shared by every action.

Functions take a ``Session`` and never commit: the caller owns the transaction (see ``core.db.session_scope``).
Large id lists are chunked so SQLite's bound-parameter limit never bites.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Row, Table, bindparam, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from core.schema import (
    BulkAction,
    BulkActionOutcome,
    BulkActionStatus,
    Company,
    CompanyEmbedding,
    DeadJob,
    DeadJobStatus,
    OutcomeStatus,
    utcnow,
)

CHUNK = 900


def chunked(items: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def upsert(
    session: Session, table: Table, rows: list[dict[str, Any]], keys: Sequence[str], update_cols: Sequence[str]
) -> None:
    """INSERT ... ON CONFLICT (keys) DO UPDATE, on SQLite and PostgreSQL alike.

    One statement executed with many parameter sets: it compiles once and stays in SQLAlchemy's statement cache,
    where a multi-row VALUES clause would be compiled afresh for every batch.
    """
    if not rows:
        return
    session.execute(_upsert_statement(session.get_bind().dialect.name, table, tuple(keys), tuple(update_cols)), rows)


def insert_rows(
    session: Session, table: Table, constants: Mapping[str, Any], columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """INSERT many rows that share ``constants``, as one driver executemany.

    For bulk writes of our own values (the outcome rows of a large import): each column's bind processing (enum
    names, UTC timestamps, ``CleanText``'s cleaning) runs once for a constant and once per value of the varying
    ``columns``, without SQLAlchemy's per-parameter-set work, which cost three times the insert itself on
    SQLite (12 against 4 us a row, measured at 100,000 outcome rows).
    """
    if not rows:
        return
    connection = session.connection()
    dialect = connection.dialect
    names = [*constants, *columns]
    processors = [table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names]
    fixed = [proc(value) if proc else value for proc, value in zip(processors, constants.values(), strict=False)]
    varying = processors[len(constants) :]
    marker = "?" if dialect.paramstyle == "qmark" else "%s"
    sql = f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({', '.join([marker] * len(names))})"
    prepared = [(*fixed, *[proc(v) if proc else v for proc, v in zip(varying, row, strict=True)]) for row in rows]
    connection.exec_driver_sql(sql, prepared)


def update_rows(
    session: Session,
    table: Table,
    keys: Sequence[str],
    constants: Mapping[str, Any],
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
) -> None:
    """UPDATE many rows by their ``keys`` (each row: its varying ``columns``' values, then its key values), as one
    driver executemany; ``constants`` are set on every row.  The UPDATE twin of :func:`insert_rows`, for the same
    reason: SQLAlchemy's per-parameter-set work cost more than the statement (a local reclassify changes ~100,000
    companies and as many outcome rows)."""
    if not rows:
        return
    connection = session.connection()
    dialect = connection.dialect
    names = [*columns, *constants]

    def processor(name: str) -> Any:
        return table.c[name].type.dialect_impl(dialect).bind_processor(dialect)

    varying = [processor(name) for name in [*columns, *keys]]
    fixed = [(p(v) if (p := processor(name)) else v) for name, v in constants.items()]
    marker = "?" if dialect.paramstyle == "qmark" else "%s"
    assignments = ", ".join(f"{name} = {marker}" for name in names)
    where = " AND ".join(f"{key} = {marker}" for key in keys)
    sql = f"UPDATE {table.name} SET {assignments} WHERE {where}"
    width = len(columns)
    prepared = []
    for row in rows:
        values = [proc(v) if proc else v for proc, v in zip(varying, row, strict=True)]
        prepared.append((*values[:width], *fixed, *values[width:]))
    connection.exec_driver_sql(sql, prepared)


@functools.lru_cache(maxsize=64)
def _upsert_statement(dialect: str, table: Table, keys: tuple[str, ...], update_cols: tuple[str, ...]) -> Any:
    """Built once per table and dialect: building ``excluded`` costs more than executing the statement."""
    module: Any = postgresql if dialect == "postgresql" else sqlite
    stmt = module.insert(table)
    excluded = stmt.excluded
    return stmt.on_conflict_do_update(index_elements=list(keys), set_={c: getattr(excluded, c) for c in update_cols})


# --- companies ---------------------------------------------------------------------------------------------


def existing_company_ids(session: Session, ids: Sequence[int]) -> set[int]:
    found: set[int] = set()
    for part in chunked(list(ids)):
        found.update(session.scalars(select(Company.id).where(Company.id.in_(part))))
    return found


def load_companies(session: Session, ids: Sequence[int]) -> list[Company]:
    """Companies in the order of ``ids``; ids not found are left out (the caller validated them)."""
    by_id: dict[int, Company] = {}
    for part in chunked(list(ids)):
        by_id.update((c.id, c) for c in session.scalars(select(Company).where(Company.id.in_(part))))
    return [by_id[i] for i in ids if i in by_id]


def company_identities(session: Session, ids: Sequence[int]) -> list[tuple[int, str, str | None]]:
    """(id, name, website) of the companies in ``ids`` that exist: what the input checks read."""
    found: list[tuple[int, str, str | None]] = []
    for part in chunked(list(ids)):
        found.extend(
            session.execute(select(Company.id, Company.name, Company.website).where(Company.id.in_(part))).tuples()
        )
    return found


EmbeddingInput = Row[int, str, str | None, str | None, str | None, str | None]

_companies = cast(Table, Company.__table__)
_embeddings = cast(Table, CompanyEmbedding.__table__)
#: built once: constructing a SELECT costs more than running it, and a batch runs this for every ten companies
_EMBEDDING_INPUTS = (
    select(
        _companies.c.id,
        _companies.c.name,
        _companies.c.industry,
        _companies.c.activity_description,
        _companies.c.country,
        _embeddings.c.text_sha256.label("current_sha256"),
    )
    .select_from(
        _companies.outerjoin(
            _embeddings,
            (_embeddings.c.company_id == _companies.c.id) & (_embeddings.c.model_id == bindparam("model_id")),
        )
    )
    .where(_companies.c.id.in_(bindparam("ids", expanding=True)))
)


def embedding_inputs(session: Session, ids: Sequence[int], model_id: str) -> list[EmbeddingInput]:
    """What embedding ``ids`` with ``model_id`` needs, in the order of ``ids`` (missing ids left out).

    A row is the id, the columns the embedding template reads and ``current_sha256``: the text hash of the
    company's current vector of this model, or None.  One query per batch instead of one for the companies and
    one for their vectors, and five columns instead of whole ``Company`` objects.
    """
    by_id: dict[int, EmbeddingInput] = {}
    for part in chunked(list(ids)):
        rows = session.execute(_EMBEDDING_INPUTS, {"ids": list(part), "model_id": model_id})
        by_id.update((row.id, row) for row in rows)
    return [by_id[i] for i in ids if i in by_id]


# --- bulk actions ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutcomeCounts:
    total: int
    succeeded: int
    skipped: int
    failed: int

    @property
    def processed(self) -> int:
        return self.succeeded + self.skipped + self.failed

    @property
    def failure_ratio(self) -> float:
        return self.failed / self.processed if self.processed else 0.0

    def changed_by(self, changes: Mapping[str, int]) -> OutcomeCounts:
        """These counts after outcomes moved between statuses (``record_results``' return value)."""
        return OutcomeCounts(
            total=self.total,
            succeeded=self.succeeded + changes.get(OutcomeStatus.SUCCEEDED.value, 0),
            skipped=self.skipped + changes.get(OutcomeStatus.SKIPPED.value, 0),
            failed=self.failed + changes.get(OutcomeStatus.FAILED.value, 0),
        )


def create_bulk_action(
    session: Session,
    *,
    action: str,
    company_ids: Sequence[int],
    created_by: str,
    priority: int = 0,
    flow_run_id: str | None = None,
    parameters: dict[str, Any] | None = None,
    parent_id: int | None = None,
) -> BulkAction:
    """The action record plus one ``pending`` outcome row per company, in selection order."""
    record = BulkAction(
        action=action,
        status=BulkActionStatus.PENDING,
        total=len(company_ids),
        created_by=created_by,
        priority=priority,
        flow_run_id=flow_run_id,
        parameters=parameters or {},
        parent_id=parent_id,
    )
    session.add(record)
    session.flush()
    rows = [
        {"bulk_action_id": record.id, "company_id": cid, "position": pos, "status": OutcomeStatus.PENDING}
        for pos, cid in enumerate(company_ids)
    ]
    for part in chunked(rows, 2000):
        session.execute(insert(BulkActionOutcome), list(part))
    return record


def find_bulk_action_by_flow_run(session: Session, flow_run_id: str) -> BulkAction | None:
    return session.scalars(select(BulkAction).where(BulkAction.flow_run_id == flow_run_id)).one_or_none()


def bulk_action_company_ids(session: Session, bulk_action_id: int) -> list[int]:
    return list(
        session.scalars(
            select(BulkActionOutcome.company_id)
            .where(BulkActionOutcome.bulk_action_id == bulk_action_id)
            .order_by(BulkActionOutcome.position)
        )
    )


def batch_members(session: Session, bulk_action_id: int, start: int, end: int) -> list[tuple[int, OutcomeStatus]]:
    """The companies at positions ``[start, end)`` of a bulk action, in order, with their outcome so far.

    A batch reads its companies this way (``core.batching``): its task input is the range, never the ids.
    """
    rows = session.execute(
        select(BulkActionOutcome.company_id, BulkActionOutcome.status)
        .where(
            BulkActionOutcome.bulk_action_id == bulk_action_id,
            BulkActionOutcome.position >= start,
            BulkActionOutcome.position < end,
        )
        .order_by(BulkActionOutcome.position)
    ).tuples()
    return [(int(cid), OutcomeStatus(status)) for cid, status in rows]


def outcome_counts(session: Session, bulk_action_id: int, positions: tuple[int, int] | None = None) -> OutcomeCounts:
    """Outcome counts of a bulk action, or of the position range ``positions`` of it (one shard)."""
    stmt = select(BulkActionOutcome.status, func.count()).where(BulkActionOutcome.bulk_action_id == bulk_action_id)
    if positions is not None:
        stmt = stmt.where(BulkActionOutcome.position >= positions[0], BulkActionOutcome.position < positions[1])
    rows = session.execute(stmt.group_by(BulkActionOutcome.status)).all()
    by_status = {OutcomeStatus(s): int(n) for s, n in rows}
    return OutcomeCounts(
        total=sum(by_status.values()),
        succeeded=by_status.get(OutcomeStatus.SUCCEEDED, 0),
        skipped=by_status.get(OutcomeStatus.SKIPPED, 0),
        failed=by_status.get(OutcomeStatus.FAILED, 0),
    )


def write_progress(session: Session, bulk_action_id: int) -> OutcomeCounts:
    """Recount outcomes from the rows themselves (so a resumed run counts its checkpointed batches too)."""
    counts = outcome_counts(session, bulk_action_id)
    store_progress(session, bulk_action_id, counts)
    return counts


def store_progress(session: Session, bulk_action_id: int, counts: OutcomeCounts) -> None:
    """Write counts taken earlier (``outcome_counts``) to the bulk action record.

    Split from the count so a caller can count in a read transaction and hold SQLite's writer only for this
    one-row UPDATE: counting 10,000 outcomes takes milliseconds, and batches wait to commit meanwhile.
    """
    session.execute(
        update(BulkAction)
        .where(BulkAction.id == bulk_action_id)
        .values(
            processed=counts.processed,
            succeeded=counts.succeeded,
            skipped=counts.skipped,
            failed=counts.failed,
            updated_at=utcnow(),
        )
    )


def set_status(
    session: Session,
    bulk_action_id: int,
    status: BulkActionStatus,
    *,
    reason: str | None = None,
    error_summary: dict[str, Any] | None = None,
    flow_run_id: str | None = None,
) -> None:
    values: dict[str, Any] = {"status": status, "status_reason": reason, "updated_at": utcnow()}
    if status is BulkActionStatus.RUNNING:
        values["started_at"] = utcnow()
        values["finished_at"] = None
    if status.finished:
        values["finished_at"] = utcnow()
    if error_summary is not None:
        values["error_summary"] = error_summary
    if flow_run_id is not None:
        values["flow_run_id"] = flow_run_id
    session.execute(update(BulkAction).where(BulkAction.id == bulk_action_id).values(**values))


def error_summary(session: Session, bulk_action_id: int, limit: int = 10) -> dict[str, Any]:
    """Dead jobs of the action grouped by error class: what a human needs to see first."""
    rows = session.execute(
        select(DeadJob.error_class, func.count(), func.min(DeadJob.error_message))
        .where(DeadJob.bulk_action_id == bulk_action_id)
        .group_by(DeadJob.error_class)
        .order_by(func.count().desc())
        .limit(limit)
    ).all()
    return {cls: {"count": int(n), "example": example} for cls, n, example in rows}


# --- outcomes and dead jobs --------------------------------------------------------------------------------


@dataclass(frozen=True)
class CompanyResult:
    """What happened to one company in one batch."""

    company_id: int
    status: OutcomeStatus
    detail: str | None = None
    attempts: int = 1
    error_class: str | None = None
    retryable: bool = False


_outcomes = cast(Table, BulkActionOutcome.__table__)
#: the current statuses of some companies' outcomes in one bulk action (read before they are replaced)
_OUTCOME_STATUSES = select(_outcomes.c.company_id, _outcomes.c.status).where(
    _outcomes.c.bulk_action_id == bindparam("key_action"),
    _outcomes.c.company_id.in_(bindparam("key_companies", expanding=True)),
)


def record_results(
    session: Session, bulk_action_id: int, action: str, results: Iterable[CompanyResult]
) -> dict[str, int]:
    """Write each company's outcome; failures become (or refresh) dead jobs.

    Returns how the action's outcome counts changed, status value → companies gained (negative: lost), read
    from the rows being replaced in this transaction, so a running action keeps its progress counts exact by
    adding these up instead of recounting every outcome row (``OutcomeCounts.changed_by``).
    """
    results = list(results)
    if not results:
        return {}
    previous = dict(
        session.execute(
            _OUTCOME_STATUSES, {"key_action": bulk_action_id, "key_companies": [r.company_id for r in results]}
        )
        .tuples()
        .all()
    )
    changes: Counter[str] = Counter()
    for r in results:
        before = previous.get(r.company_id)
        if before is not None and OutcomeStatus(before) is not r.status:
            changes[OutcomeStatus(before).value] -= 1
            changes[r.status.value] += 1
    now = utcnow()
    update_rows(
        session,
        _outcomes,
        ("bulk_action_id", "company_id"),
        {"updated_at": now},
        ("status", "detail", "attempts"),
        [(r.status, r.detail, r.attempts, bulk_action_id, r.company_id) for r in results],
    )
    dead = [
        {
            "bulk_action_id": bulk_action_id,
            "action": action,
            "company_id": r.company_id,
            "error_class": r.error_class or "Error",
            "error_message": (r.detail or "")[:2000],
            "retryable": r.retryable,
            "attempts": r.attempts,
            "status": DeadJobStatus.OPEN,
            "created_at": now,
        }
        for r in results
        if r.status is OutcomeStatus.FAILED
    ]
    upsert(
        session,
        DeadJob.__table__,  # type: ignore[arg-type]
        dead,
        keys=("bulk_action_id", "company_id"),
        update_cols=("error_class", "error_message", "retryable", "attempts", "created_at"),
    )
    return {status: n for status, n in changes.items() if n}


def flag_for_review(session: Session, reasons: Mapping[int, str]) -> None:
    """Set ``needs_review`` with its reason on companies (invalid input found before a provider call)."""
    if reasons:
        session.execute(
            update(_companies)
            .where(_companies.c.id == bindparam("key_company"))
            .values(needs_review=True, review_reason=bindparam("reason"), updated_at=bindparam("now")),
            [{"key_company": cid, "reason": reason, "now": utcnow()} for cid, reason in reasons.items()],
        )


def open_dead_jobs(session: Session, bulk_action_id: int | None = None) -> list[DeadJob]:
    stmt = select(DeadJob).where(DeadJob.status == DeadJobStatus.OPEN).order_by(DeadJob.id)
    if bulk_action_id is not None:
        stmt = stmt.where(DeadJob.bulk_action_id == bulk_action_id)
    return list(session.scalars(stmt))


# --- embeddings --------------------------------------------------------------------------------------------


def upsert_embeddings(session: Session, rows: list[dict[str, Any]]) -> None:
    """Rows of company_id, model_id, dimension, text_sha256, text, vector; one row per company and model."""
    now: datetime = utcnow()
    for row in rows:
        row.setdefault("created_at", now)
        row["updated_at"] = now
    upsert(
        session,
        CompanyEmbedding.__table__,  # type: ignore[arg-type]
        rows,
        keys=("company_id", "model_id"),
        update_cols=("dimension", "text_sha256", "text", "vector", "updated_at"),
    )


# --- pause requests ----------------------------------------------------------------------------------------


def pause_requested(session: Session, bulk_action_id: int) -> bool:
    return bool(session.scalar(select(BulkAction.pause_requested).where(BulkAction.id == bulk_action_id)))


def set_pause_request(session: Session, bulk_action_id: int, requested: bool) -> None:
    session.execute(
        update(BulkAction).where(BulkAction.id == bulk_action_id).values(pause_requested=requested, updated_at=utcnow())
    )
