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
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from core.schema import Company, CompanyHistory, utcnow
from core.store import chunked

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


@dataclass(frozen=True)
class FieldChange:
    """One field of one company, before and after."""

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
) -> list[FieldChange]:
    """Set each company's ``{field: value}`` where it differs, with one history row per changed field.

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
    columns = [Company.__table__.c[f] for f in fields]
    for ids in chunked(sorted(changes), 500):
        current = {row[0]: row[1:] for row in session.execute(select(Company.id, *columns).where(Company.id.in_(ids)))}
        for company_id in ids:
            old_row = current.get(company_id)
            if old_row is None:
                continue
            old_values = dict(zip(fields, old_row, strict=True))
            wanted = changes[company_id]
            changed = {f: v for f, v in wanted.items() if differs(old_values[f], v)}
            if not changed:
                continue
            session.execute(update(Company).where(Company.id == company_id).values(**changed, updated_at=utcnow()))
            done.extend(FieldChange(company_id, f, old_values[f], v) for f, v in changed.items())
    record_history(session, done, bulk_action_id)
    return done


def record_history(session: Session, changes: Sequence[FieldChange], bulk_action_id: int | None) -> None:
    """Insert the history rows of changes the caller has already made, in the caller's transaction."""
    if not changes:
        return
    now = utcnow()
    session.execute(
        insert(CompanyHistory),
        [
            {
                "company_id": c.company_id,
                "field": c.field,
                "old_value": encode_value(c.old),
                "new_value": encode_value(c.new),
                "bulk_action_id": bulk_action_id,
                "changed_at": now,
            }
            for c in changes
        ],
    )


def changes_by_action(session: Session, bulk_action_id: int) -> list[CompanyHistory]:
    """Every history row one bulk action wrote, in the order it wrote them."""
    return list(
        session.scalars(
            select(CompanyHistory).where(CompanyHistory.bulk_action_id == bulk_action_id).order_by(CompanyHistory.id)
        )
    )
