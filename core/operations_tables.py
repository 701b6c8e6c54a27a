"""Tables every worker shares for operations: provider circuit breakers and provider-slot requests.

They live in the company database because that is the one store every flow run and worker of a deployment
already shares (SQLite on one machine, PostgreSQL for a team); a breaker kept in one process's memory would let
every other worker keep calling a provider that is down, and slot priorities only mean something when every
competing run sees the same queue.

- ``provider_circuits``: one row per provider concurrency tag, the breaker's state (``core.circuit``).
- ``circuit_transitions``: every state change, for the operations report and for measuring an outage.
- ``slot_requests``: one row per flow run that holds or waits for a provider's slots, with its priority and
  since when it waits (``core.slot_priority``).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.clean_types import CleanText
from core.schema import Base, utcnow


class CircuitState:
    """A breaker's states (plain strings: a new state is a code change, not a migration)."""

    CLOSED = "closed"  # calls go through; failures are counted
    OPEN = "open"  # no call goes out until the cool-down has passed
    HALF_OPEN = "half_open"  # a few probes go out; a success closes the breaker, a failure opens it again


class ProviderCircuit(Base):
    __tablename__ = "provider_circuits"

    tag: Mapped[str] = mapped_column(String(100), primary_key=True)
    state: Mapped[str] = mapped_column(String(16), default=CircuitState.CLOSED)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    #: when the breaker last opened (the cool-down counts from here)
    opened_at: Mapped[datetime | None]
    #: when the current outage began: the first opening since the breaker was last closed
    outage_started_at: Mapped[datetime | None]
    #: probes admitted in the current half-open spell (never more than the configured probes)
    probes_sent: Mapped[int] = mapped_column(Integer, default=0)
    #: how many times the breaker has opened, ever
    opened_count: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(CleanText)
    changed_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class CircuitTransition(Base):
    __tablename__ = "circuit_transitions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tag: Mapped[str] = mapped_column(String(100))
    from_state: Mapped[str] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(CleanText)
    at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_circuit_transitions_tag_at", "tag", "at"),)


class SlotRequest(Base):
    """A flow run's claim on a provider's slots: what it holds, what it wants, and since when it waits."""

    __tablename__ = "slot_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tag: Mapped[str] = mapped_column(String(100))
    flow_run_id: Mapped[str] = mapped_column(String(64))
    bulk_action_id: Mapped[int | None] = mapped_column(ForeignKey("bulk_actions.id", ondelete="CASCADE"))
    #: the bulk action's priority (higher first)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    wanted: Mapped[int] = mapped_column(Integer, default=1)
    held: Mapped[int] = mapped_column(Integer, default=0)
    #: when it began to wait for a slot; NULL while it holds all it wants (age raises a waiter's priority)
    waiting_since: Mapped[datetime | None]
    #: renewed while its flow run is alive; a request not renewed for a while belongs to a dead run
    heartbeat_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        UniqueConstraint("tag", "flow_run_id", name="uq_slot_requests_tag_flow_run"),
        Index("ix_slot_requests_tag_waiting", "tag", "waiting_since"),
    )
