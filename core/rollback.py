"""Undoing a bulk action from the change history: what to restore, and what changed again since.

Every change an action made is in ``company_history`` (one row per field, old and new value, written in the
transaction of the change).  Rolling action X back restores, field by field, the value the field had before
X touched it.  A field changed again since, by a later action (a later history row) or outside any recorded
action (its value is no longer what X left), is a *conflict*: it is not overwritten unless ``force``, and is
reported per company and field.  The restore is itself a change, recorded in the history under the rollback's
own bulk action, so rolling the rollback back redoes X.

The companies a rollback visits are X's outcome companies and every other company with history rows of X
(:func:`companies_beyond_outcomes`: a merge's losers).  What a merge moved besides fields (score rows, closed
dead jobs) and its clusters' status are put back by ``core.merge``, in the same batch transactions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from core.history import decode_value, differs
from core.schema import BulkActionOutcome, Company, CompanyHistory
from core.store import chunked


def companies_beyond_outcomes(session: Session, bulk_action_id: int) -> list[int]:
    """Companies the action changed that are not its outcome companies, by id: a merge's losers.

    A rollback visits every company with history rows of the action, not only the companies it ran on: a merge
    runs on the clusters' winners and also changes the losers (``core.merge``).  Other actions change only their
    own companies, and this is empty.
    """
    recorded = (
        select(BulkActionOutcome.company_id)
        .where(
            BulkActionOutcome.bulk_action_id == bulk_action_id,
            BulkActionOutcome.company_id == CompanyHistory.company_id,
        )
        .exists()
    )
    return list(
        session.scalars(
            select(CompanyHistory.company_id)
            .where(CompanyHistory.bulk_action_id == bulk_action_id, ~recorded)
            .distinct()
            .order_by(CompanyHistory.company_id)
        )
    )


@dataclass(frozen=True)
class FieldRestore:
    """One field X changed: the value before X, the value X left, and X's last history row for it."""

    company_id: int
    field: str
    before: Any
    left: Any
    last_row_id: int


@dataclass(frozen=True)
class Conflict:
    company_id: int
    field: str
    reason: str


@dataclass
class RollbackPlan:
    """For one batch of companies: the values to set, the conflicts, and the companies X never changed."""

    changes: dict[int, dict[str, Any]]
    conflicts: dict[int, list[Conflict]]
    untouched: list[int]


def restores_of(session: Session, bulk_action_id: int, company_ids: Sequence[int]) -> dict[int, list[FieldRestore]]:
    """Per company, every field ``bulk_action_id`` changed (first old value, last new value)."""
    found: dict[tuple[int, str], FieldRestore] = {}
    for part in chunked(list(company_ids), 500):
        rows = session.execute(
            select(
                CompanyHistory.id,
                CompanyHistory.company_id,
                CompanyHistory.field,
                CompanyHistory.old_value,
                CompanyHistory.new_value,
            )
            .where(CompanyHistory.bulk_action_id == bulk_action_id, CompanyHistory.company_id.in_(part))
            .order_by(CompanyHistory.id)
        ).all()
        for row_id, company_id, field, old, new in rows:
            first = found.get((company_id, field))
            before = first.before if first is not None else decode_value(field, old)
            found[(company_id, field)] = FieldRestore(company_id, field, before, decode_value(field, new), row_id)
    by_company: dict[int, list[FieldRestore]] = {}
    for restore in found.values():
        by_company.setdefault(restore.company_id, []).append(restore)
    return by_company


def later_changes(session: Session, restores: Sequence[FieldRestore]) -> dict[tuple[int, str], int | None]:
    """(company, field) → the bulk action that changed it after X's last change of it (None: no action id)."""
    later: dict[tuple[int, str], int | None] = {}
    for part in chunked(list(restores), 200):
        clauses = [
            and_(
                CompanyHistory.company_id == r.company_id,
                CompanyHistory.field == r.field,
                CompanyHistory.id > r.last_row_id,
            )
            for r in part
        ]
        rows = session.execute(
            select(CompanyHistory.company_id, CompanyHistory.field, CompanyHistory.bulk_action_id)
            .where(or_(*clauses))
            .order_by(CompanyHistory.id)
        ).all()
        for company_id, field, by in rows:
            later.setdefault((company_id, field), by)
    return later


def plan_rollback(session: Session, bulk_action_id: int, company_ids: Sequence[int], *, force: bool) -> RollbackPlan:
    restores = restores_of(session, bulk_action_id, company_ids)
    flat = [r for rs in restores.values() for r in rs]
    later = later_changes(session, flat) if flat else {}
    fields = sorted({r.field for r in flat})
    current: dict[int, dict[str, Any]] = {}
    if fields:
        columns = [Company.__table__.c[f] for f in fields]
        for part in chunked(sorted(restores), 500):
            for row in session.execute(select(Company.id, *columns).where(Company.id.in_(part))):
                current[row[0]] = dict(zip(fields, row[1:], strict=True))
    plan = RollbackPlan(changes={}, conflicts={}, untouched=[c for c in company_ids if c not in restores])
    for company_id, company_restores in restores.items():
        if company_id not in current:
            continue  # the company is gone: nothing to restore it into
        for r in company_restores:
            reason = _conflict(r, later, current[company_id][r.field])
            if reason is not None and not force:
                plan.conflicts.setdefault(company_id, []).append(Conflict(company_id, r.field, reason))
                continue
            if differs(current[company_id][r.field], r.before):
                plan.changes.setdefault(company_id, {})[r.field] = r.before
    return plan


def _conflict(restore: FieldRestore, later: dict[tuple[int, str], int | None], now: Any) -> str | None:
    key = (restore.company_id, restore.field)
    if key in later:
        by = later[key]
        return f"changed again by bulk action {by}" if by is not None else "changed again since"
    if differs(now, restore.left):
        return "changed outside any recorded action"
    return None
