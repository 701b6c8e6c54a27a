"""Tables of LLM reclassify's Anthropic Message Batches: the submissions and the staged results.

A ``message_batches`` row is written *before* its POST (status ``submitting``) and gets the provider's batch id
the moment the API returns it, so a crash between the two is visible on restart (``core.message_batches``).
``message_batch_results`` is the staging table: a batch's results are inserted in the transaction that marks the
batch ``staged``, and each staged row is deleted in the transaction that applies it, so no result is
downloaded or applied twice.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.clean_types import CleanText
from core.schema import Base, utcnow


class MessageBatchStatus:
    """The life of a submission row (plain strings: a new state is a code change, not a migration)."""

    SUBMITTING = "submitting"  # the POST is (or was) in flight; no batch id recorded
    IN_PROGRESS = "in_progress"  # the provider has it; poll it
    STAGED = "staged"  # ended, and every result line is in the staging table
    ORPHAN = "orphan"  # a duplicate of an in-flight POST found after a crash: canceled, results ignored
    ABANDONED = "abandoned"  # its POST never reached the provider (nothing found after a crash)

    POLLED = (IN_PROGRESS, ORPHAN)


class MessageBatch(Base):
    __tablename__ = "message_batches"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    bulk_action_id: Mapped[int] = mapped_column(ForeignKey("bulk_actions.id", ondelete="CASCADE"))
    provider_batch_id: Mapped[str | None] = mapped_column(String(100), unique=True)
    status: Mapped[str] = mapped_column(String(16), default=MessageBatchStatus.SUBMITTING)
    request_count: Mapped[int] = mapped_column(Integer)
    #: the counts the provider last reported (processing, succeeded, errored, canceled, expired)
    request_counts: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    #: the spend reservation that holds this batch's worst case until its results are staged
    reservation_id: Mapped[int | None] = mapped_column(Integer)
    #: for an orphan: the submission whose in-flight POST created it
    orphan_of: Mapped[int | None] = mapped_column(Integer)
    note: Mapped[str | None] = mapped_column(CleanText)
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    submitted_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    staged_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_message_batches_action_status", "bulk_action_id", "status"),)


class MessageBatchResult(Base):
    """One staged result line, waiting to be validated and applied."""

    __tablename__ = "message_batch_results"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    bulk_action_id: Mapped[int] = mapped_column(ForeignKey("bulk_actions.id", ondelete="CASCADE"))
    message_batch_id: Mapped[int] = mapped_column(ForeignKey("message_batches.id", ondelete="CASCADE"))
    company_id: Mapped[int] = mapped_column(Integer)
    #: succeeded, errored, canceled or expired
    result_type: Mapped[str] = mapped_column(String(16))
    #: succeeded: the answer text, model and usage; otherwise the error
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    staged_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        UniqueConstraint("message_batch_id", "company_id", name="uq_message_batch_results_batch_company"),
        Index("ix_message_batch_results_action", "bulk_action_id", "id"),
    )
