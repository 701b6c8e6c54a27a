"""The database side of a reclassify's Message Batches: intents, batch ids, staged results.

The rules that make a crash at any phase safe:

* **Submit.**  A sub-batch's row is written (status ``submitting``, its companies linked through
  ``bulk_action_outcomes.message_batch_id``) and committed *before* the POST, and the provider's batch id is
  written the moment the POST returns.  A row still ``submitting`` after a crash is a POST whose fate is unknown:
  ``resolve_unrecorded`` looks for the batch it may have made (``recent`` batches of the same size created since
  the intent) and adopts a single match, so no batch exists twice; with no match the companies go back to be
  submitted again; with several (another client posting same-sized batches at the same moment) they are all
  recorded as orphans to cancel, and the companies are submitted again.
* **Stage.**  An ended batch's result lines go into ``message_batch_results`` in the one transaction that marks the
  batch ``staged`` and settles its spend: a crash mid-way stages nothing, and a staged batch is never downloaded
  again.
* **Apply.**  A staged row is applied and deleted in one transaction (``tasks.message_batches``), and only while
  its company's outcome is still pending, so a result is never applied twice, even when an orphan and its
  resubmission both return one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, delete, func, insert, select, update
from sqlalchemy.orm import Session

from core.message_batch_tables import MessageBatch, MessageBatchResult, MessageBatchStatus
from core.schema import BulkAction, BulkActionOutcome, BulkActionStatus, OutcomeStatus, SpendReservation, utcnow
from core.spend import LedgerEntry, release, settle

_outcomes = cast(Table, BulkActionOutcome.__table__)
#: how far before its intent a batch may claim to have been created (clock skew between us and the provider)
CLOCK_SKEW = timedelta(minutes=5)


@dataclass(frozen=True)
class StagedLine:
    """One result line that belongs to this action: its company, type and payload."""

    company_id: int
    result_type: str
    payload: dict[str, Any]


def unsubmitted(session: Session, bulk_action_id: int, limit: int) -> list[int]:
    """Pending companies not in any sub-batch yet, in selection order."""
    return list(
        session.scalars(
            select(_outcomes.c.company_id)
            .where(
                _outcomes.c.bulk_action_id == bulk_action_id,
                _outcomes.c.status == OutcomeStatus.PENDING.value,
                _outcomes.c.message_batch_id.is_(None),
            )
            .order_by(_outcomes.c.position)
            .limit(limit)
        )
    )


def record_intent(session: Session, bulk_action_id: int, company_ids: Sequence[int], reservation_id: int | None) -> int:
    """Write a sub-batch's row before its POST and link its companies to it; returns the row id."""
    row_id = session.execute(
        insert(MessageBatch)
        .values(
            bulk_action_id=bulk_action_id,
            status=MessageBatchStatus.SUBMITTING,
            request_count=len(company_ids),
            reservation_id=reservation_id,
            requested_at=utcnow(),
        )
        .returning(MessageBatch.id)
    ).scalar_one()
    session.execute(
        update(_outcomes)
        .where(_outcomes.c.bulk_action_id == bulk_action_id, _outcomes.c.company_id.in_(list(company_ids)))
        .values(message_batch_id=row_id)
    )
    return int(row_id)


def record_submitted(
    session: Session, row_id: int, provider_batch_id: str, counts: dict[str, int], note: str | None = None
) -> None:
    session.execute(
        update(MessageBatch)
        .where(MessageBatch.id == row_id)
        .values(
            provider_batch_id=provider_batch_id,
            status=MessageBatchStatus.IN_PROGRESS,
            request_counts=counts,
            submitted_at=utcnow(),
            note=note,
        )
    )


def unrecorded(session: Session, bulk_action_id: int) -> list[MessageBatch]:
    """Sub-batches whose POST may or may not have made a batch (a crash or a lost answer)."""
    return list(
        session.scalars(
            select(MessageBatch)
            .where(MessageBatch.bulk_action_id == bulk_action_id, MessageBatch.status == MessageBatchStatus.SUBMITTING)
            .order_by(MessageBatch.id)
        )
    )


def known_batch_ids(session: Session, since: datetime) -> set[str]:
    """Provider batch ids recorded by any action since ``since`` (never adopt another action's batch)."""
    rows = session.scalars(
        select(MessageBatch.provider_batch_id).where(
            MessageBatch.provider_batch_id.is_not(None), MessageBatch.requested_at >= since - CLOCK_SKEW
        )
    )
    return {str(row) for row in rows}


def abandon(session: Session, row: MessageBatch, note: str) -> int:
    """The POST made no batch: unlink the companies (they will be submitted again), give the reservation back."""
    session.execute(
        update(_outcomes)
        .where(_outcomes.c.bulk_action_id == row.bulk_action_id, _outcomes.c.message_batch_id == row.id)
        .values(message_batch_id=None)
    )
    session.execute(
        update(MessageBatch).where(MessageBatch.id == row.id).values(status=MessageBatchStatus.ABANDONED, note=note)
    )
    return release(session, [row.reservation_id]) if row.reservation_id is not None else 0


def record_orphans(session: Session, row: MessageBatch, batch_ids: Iterable[str]) -> None:
    """Batches one lost POST may have made, which nobody can tell apart until they end: cancel and watch them."""
    for batch_id in batch_ids:
        session.execute(
            insert(MessageBatch).values(
                bulk_action_id=row.bulk_action_id,
                provider_batch_id=batch_id,
                status=MessageBatchStatus.ORPHAN,
                request_count=row.request_count,
                orphan_of=row.id,
                requested_at=row.requested_at,
                note="a possible duplicate of a POST whose answer was lost: canceled; its results apply only to "
                "companies still pending",
            )
        )


def to_poll(session: Session, bulk_action_id: int) -> list[MessageBatch]:
    return list(
        session.scalars(
            select(MessageBatch)
            .where(MessageBatch.bulk_action_id == bulk_action_id, MessageBatch.status.in_(MessageBatchStatus.POLLED))
            .order_by(MessageBatch.id)
        )
    )


def open_batches(session: Session, bulk_action_id: int) -> int:
    """Sub-batches not staged yet (in progress at the provider, or a POST to resolve)."""
    return int(
        session.scalar(
            select(func.count())
            .select_from(MessageBatch)
            .where(
                MessageBatch.bulk_action_id == bulk_action_id,
                MessageBatch.status.in_((*MessageBatchStatus.POLLED, MessageBatchStatus.SUBMITTING)),
            )
        )
        or 0
    )


def update_counts(session: Session, row_id: int, counts: dict[str, int]) -> None:
    session.execute(update(MessageBatch).where(MessageBatch.id == row_id).values(request_counts=counts))


def linked_pending(session: Session, bulk_action_id: int, row_id: int) -> list[int]:
    """Companies whose request went in this sub-batch and that still wait for a result."""
    return list(
        session.scalars(
            select(_outcomes.c.company_id).where(
                _outcomes.c.bulk_action_id == bulk_action_id,
                _outcomes.c.message_batch_id == row_id,
                _outcomes.c.status == OutcomeStatus.PENDING.value,
            )
        )
    )


def reservation_accounts(session: Session, reservation_id: int | None) -> list[str] | None:
    if reservation_id is None:
        return None
    accounts = session.scalar(select(SpendReservation.accounts).where(SpendReservation.id == reservation_id))
    return list(accounts) if accounts is not None else None


@dataclass(frozen=True)
class Settlement:
    """The spend side of staging: which accounts to charge and what each succeeded request cost."""

    accounts: Sequence[str]
    entries: Sequence[LedgerEntry]
    action: str
    created_by: str


def stage(
    session: Session, row: MessageBatch, lines: Sequence[StagedLine], counts: dict[str, int], spend: Settlement
) -> int:
    """Stage an ended batch's lines, mark it staged and settle its spend, all in the caller's one transaction.

    A sub-batch's own companies that got no line are staged as ``missing`` (failed, retryable); an orphan's
    lines are staged as they are (they apply only where a company is still pending).  Returns the rows staged.
    """
    rows = [
        {
            "bulk_action_id": row.bulk_action_id,
            "message_batch_id": row.id,
            "company_id": line.company_id,
            "result_type": line.result_type,
            "payload": line.payload,
            "staged_at": utcnow(),
        }
        for line in {line.company_id: line for line in lines}.values()  # a line twice in one stream: once
    ]
    if row.status != MessageBatchStatus.ORPHAN:
        seen = {line.company_id for line in lines}
        rows += [
            {
                "bulk_action_id": row.bulk_action_id,
                "message_batch_id": row.id,
                "company_id": cid,
                "result_type": "missing",
                "payload": {},
                "staged_at": utcnow(),
            }
            for cid in linked_pending(session, row.bulk_action_id, row.id)
            if cid not in seen
        ]
    if rows:
        session.execute(insert(MessageBatchResult), rows)
    session.execute(
        update(MessageBatch)
        .where(MessageBatch.id == row.id)
        .values(status=MessageBatchStatus.STAGED, request_counts=counts, ended_at=utcnow(), staged_at=utcnow())
    )
    billed = [entry for entry in spend.entries if entry.cost_nanousd]
    if billed or row.reservation_id is not None:
        settle(
            session,
            row.reservation_id,
            spend.accounts,
            billed,
            bulk_action_id=row.bulk_action_id,
            action=spend.action,
            created_by=spend.created_by,
        )
    return len(rows)


def staged_chunk(session: Session, bulk_action_id: int, size: int = 500) -> list[MessageBatchResult]:
    """The oldest staged results of the action, at most ``size``."""
    return list(
        session.scalars(
            select(MessageBatchResult)
            .where(MessageBatchResult.bulk_action_id == bulk_action_id)
            .order_by(MessageBatchResult.id)
            .limit(size)
        )
    )


def pending_statuses(session: Session, bulk_action_id: int, company_ids: Sequence[int]) -> set[int]:
    """Which of these companies still have a pending outcome (a result applies only to those)."""
    return set(
        session.scalars(
            select(_outcomes.c.company_id).where(
                _outcomes.c.bulk_action_id == bulk_action_id,
                _outcomes.c.company_id.in_(list(company_ids)),
                _outcomes.c.status == OutcomeStatus.PENDING.value,
            )
        )
    )


def clear_staged(session: Session, ids: Sequence[int]) -> None:
    if ids:
        session.execute(delete(MessageBatchResult).where(MessageBatchResult.id.in_(list(ids))))


def in_flight_ids(session: Session, bulk_action_id: int) -> list[str]:
    """Provider ids of the action's batches still processing (to cancel when the action is cancelled)."""
    return [
        str(batch_id)
        for batch_id in session.scalars(
            select(MessageBatch.provider_batch_id).where(
                MessageBatch.bulk_action_id == bulk_action_id,
                MessageBatch.status.in_(MessageBatchStatus.POLLED),
                MessageBatch.provider_batch_id.is_not(None),
            )
        )
    ]


def set_round_status(session: Session, bulk_action_id: int, status: BulkActionStatus, reason: str | None) -> None:
    """Between rounds an action is ``waiting``, during one ``running``; its ``started_at`` stays the first."""
    session.execute(
        update(BulkAction)
        .where(BulkAction.id == bulk_action_id)
        .values(status=status, status_reason=reason, updated_at=utcnow())
    )


def hand_over(session: Session, bulk_action_id: int, reason: str) -> None:
    """The flow run lets go of the action (``waiting``): the continuation it scheduled will own it."""
    session.execute(
        update(BulkAction)
        .where(BulkAction.id == bulk_action_id)
        .values(status=BulkActionStatus.WAITING, status_reason=reason, flow_run_id=None, updated_at=utcnow())
    )
