"""The change history: one ``company_history`` row per changed field, written with the change itself.

Every action that changes a company's own fields (an import in ``update`` mode, ``update_status``, and later
reclassify, merge and rollback) goes through :func:`apply_changes`: it compares the wanted values with the
current ones, updates only what differs, and inserts one history row per changed field, all in the caller's
transaction.  A change without its history row therefore cannot exist, and a no-op (the value is already what
was asked) writes nothing at all, so a rerun of the same change leaves no second trace.

Values are stored as text: strings as they are, None as NULL, anything else (numbers, booleans, enums) as its
JSON text, which :func:`decode_value` reads back for a rollback.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple, cast

from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from core.schema import Company, CompanyHistory, utcnow
from core.store import chunked, insert_rows, update_rows

#: the company columns an action may change through the history (not ids, timestamps or the keys derived here)
TRACKED_FIELDS: frozenset[str] = frozenset(
    {
        "name",
        "website",
        "domain",
        "name_key",
        "industry",
        "nace_code",
        "country",
        "activity_description",
        "ownership_type",
        "status",
        "merged_into_id",
        "priority",
        "enrichment_status",
        "needs_review",
        "review_reason",
        "sector",
        "subsector",
        "business_model",
        "taxonomy_version",
        "classification_mode",
        "classification_model",
        "classification_input_sha256",
    }
)


class FieldChange(NamedTuple):
    """One field of one company, before and after (a tuple: a reclassify makes eight per company)."""

    company_id: int
    field: str
    old: Any
    new: Any


def encode_value(value: Any) -> str | None:
    """The text a history row stores for ``value`` (see the module docstring)."""
    if value is None:
        return None
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, str):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    return json.dumps(value)


def decode_value(field: str, text: str | None) -> Any:
    """The value a history row stored for ``field``: the inverse of :func:`encode_value` for tracked columns."""
    if text is None:
        return None
    column = Company.__table__.c[field]
    python_type: Any = getattr(column.type, "python_type", str)
    try:
        if issubclass(python_type, str):
            return text
    except TypeError:
        pass
    return json.loads(text)


def differs(old: Any, new: Any) -> bool:
    if isinstance(old, enum.Enum):
        old = old.value
    if isinstance(new, enum.Enum):
        new = new.value
    return bool(old != new)


def apply_changes(
    session: Session,
    changes: Mapping[int, Mapping[str, Any]],
    bulk_action_id: int | None,
    *,
    kind: str = "change",
) -> list[FieldChange]:
    """Set each company's ``{field: value}`` where it differs, with one history row per changed field.

    ``kind`` labels the history rows (``rolled_back`` for a rollback's restores, ``merge`` for a merge's fills).
    Returns what changed.  Companies that do not exist are ignored (the caller decides what that means); a
    field outside :data:`TRACKED_FIELDS` is a programming error.
    """
    unknown = {f for values in changes.values() for f in values} - TRACKED_FIELDS
    if unknown:
        raise ValueError(f"not tracked by the history: {sorted(unknown)}")
    done: list[FieldChange] = []
    fields = sorted({f for values in changes.values() for f in values})
    if not fields:
        return done
    table = cast(Table, Company.__table__)
    columns = [table.c[f] for f in fields]
    # companies that change the same set of fields are written with one driver executemany (``update_rows``): one
    # statement per company costs ~100 us of SQLAlchemy each, which was most of a local reclassify's time
    by_fields: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
    now = utcnow()
    for ids in chunked(sorted(changes), 500):
        current = {row[0]: row[1:] for row in session.execute(select(table.c.id, *columns).where(table.c.id.in_(ids)))}
        for company_id in ids:
            old_row = current.get(company_id)
            if old_row is None:
                continue
            old_values = dict(zip(fields, old_row, strict=True))
            wanted = changes[company_id]
            changed = {f: v for f, v in wanted.items() if differs(old_values[f], v)}
            if not changed:
                continue
            names = tuple(sorted(changed))
            by_fields.setdefault(names, []).append((*(changed[f] for f in names), company_id))
            done.extend(FieldChange(company_id, f, old_values[f], v) for f, v in changed.items())
    for changed_fields, rows in by_fields.items():
        update_rows(session, table, ("id",), {"updated_at": now}, changed_fields, rows)
    record_history(session, done, bulk_action_id, kind=kind)
    return done


def record_history(
    session: Session, changes: Sequence[FieldChange], bulk_action_id: int | None, *, kind: str = "change"
) -> None:
    """Insert the history rows of changes the caller has already made, in the caller's transaction.

    One driver executemany (``core.store.insert_rows``): a local reclassify writes about eight rows per
    company, and SQLAlchemy's per-row parameter work cost more than the inserts themselves.
    """
    if not changes:
        return
    insert_rows(
        session,
        cast(Table, CompanyHistory.__table__),
        {"bulk_action_id": bulk_action_id, "kind": kind, "changed_at": utcnow()},
        ("company_id", "field", "old_value", "new_value"),
        [(c.company_id, c.field, encode_value(c.old), encode_value(c.new)) for c in changes],
    )


def changes_by_action(session: Session, bulk_action_id: int) -> list[CompanyHistory]:
    """Every history row one bulk action wrote, in the order it wrote them."""
    return list(
        session.scalars(
            select(CompanyHistory).where(CompanyHistory.bulk_action_id == bulk_action_id).order_by(CompanyHistory.id)
        )
    )
