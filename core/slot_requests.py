"""The ``slot_requests`` rows: each flow run's claim on a provider's slots, shared by every worker.

A run writes its own row only (unique on tag and flow run), so a read-then-write upsert needs no locking.
``waiting_since`` is set when the run starts holding fewer slots than it wants and kept while that lasts (its
age is what raises its effective priority, ``core.slot_priority``); it is NULL while the run holds all it wants.
Functions take a ``Session`` and never commit, as in ``core.store``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from core.operations_tables import SlotRequest
from core.schema import BulkAction
from core.slot_priority import STALE_AFTER_SECONDS, Claim


def claim_of(row: SlotRequest) -> Claim:
    return Claim(
        flow_run_id=row.flow_run_id,
        bulk_action_id=row.bulk_action_id,
        priority=row.priority,
        waiting_since=row.waiting_since,
        heartbeat_at=row.heartbeat_at,
        order=row.id,
    )


def record_claim(
    session: Session,
    tag: str,
    flow_run_id: str,
    *,
    bulk_action_id: int | None,
    priority: int,
    wanted: int,
    held: int,
    now: datetime,
) -> Claim:
    """Create or update the run's row: what it holds and wants, waiting since when, alive now."""
    row = session.scalars(
        select(SlotRequest).where(SlotRequest.tag == tag, SlotRequest.flow_run_id == flow_run_id)
    ).first()
    if row is None:
        row = SlotRequest(tag=tag, flow_run_id=flow_run_id, created_at=now)
        session.add(row)
    waiting = held < wanted
    row.bulk_action_id, row.priority, row.wanted, row.held = bulk_action_id, priority, wanted, held
    row.waiting_since = (row.waiting_since or now) if waiting else None
    row.heartbeat_at = now
    session.flush()
    return claim_of(row)


def heartbeat(session: Session, tag: str, flow_run_id: str, now: datetime) -> None:
    session.execute(
        update(SlotRequest)
        .where(SlotRequest.tag == tag, SlotRequest.flow_run_id == flow_run_id)
        .values(heartbeat_at=now)
    )


def delete_claim(session: Session, tag: str, flow_run_id: str) -> None:
    session.execute(delete(SlotRequest).where(SlotRequest.tag == tag, SlotRequest.flow_run_id == flow_run_id))


def live_waiters(session: Session, tag: str, now: datetime) -> list[Claim]:
    """Every live request on ``tag`` that waits for a slot (one query on the (tag, waiting_since) index)."""
    alive_after = now - timedelta(seconds=STALE_AFTER_SECONDS)
    rows = session.scalars(
        select(SlotRequest).where(
            SlotRequest.tag == tag,
            SlotRequest.waiting_since.is_not(None),
            SlotRequest.heartbeat_at >= alive_after,
        )
    )
    return [claim_of(row) for row in rows]


def action_priority(session: Session, bulk_action_id: int) -> int | None:
    """The bulk action's recorded priority (None when there is no such action)."""
    value = session.scalar(select(BulkAction.priority).where(BulkAction.id == bulk_action_id))
    return None if value is None else int(value)
