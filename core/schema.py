"""The company database: typed SQLAlchemy 2 models.

One schema serves SQLite (the embedded default) and PostgreSQL; vectors are stored as float32 bytes so both
backends hold them the same way and search runs in numpy (see ``core.search``).  Every vector carries the id of
the model that produced it, and search only ever compares vectors of one model.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from core.clean_types import CleanString, CleanText


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on both backends (SQLite drops the zone; we put it back)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored: pass an aware UTC datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON()}


class CompanyStatus(enum.StrEnum):
    ACTIVE = "active"
    DELETED = "deleted"
    MERGED = "merged"


class EnrichmentStatus(enum.StrEnum):
    NEVER = "never"
    ENRICHED = "enriched"
    FAILED_RETRYABLE = "failed_retryable"
    FAILED_PERMANENT = "failed_permanent"


class BulkActionStatus(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    PAUSED = "paused"
    #: LLM reclassify between rounds: its message batches are processing at the provider and no flow run is
    #: polling them; a continuation flow run is scheduled to look again (``flows.reclassify_llm``)
    WAITING = "waiting"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (BulkActionStatus.COMPLETED, BulkActionStatus.FAILED, BulkActionStatus.CANCELLED)


class OutcomeStatus(enum.StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    SKIPPED = "skipped"
    FAILED = "failed"


class DeadJobStatus(enum.StrEnum):
    OPEN = "open"
    REQUEUED = "requeued"
    NEEDS_REVIEW = "needs_review"
    DISCARDED = "discarded"
    RESOLVED = "resolved"


def _enum(cls: type[enum.StrEnum]) -> Enum:
    # Stored as plain strings (no native ENUM): adding a state later is a code change, not a migration.
    return Enum(cls, native_enum=False, length=32, values_callable=lambda e: [m.value for m in e])


class Company(Base):
    __tablename__ = "companies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(CleanString(300))
    website: Mapped[str | None] = mapped_column(CleanString(500))
    #: the website's registrable domain (``acme.co.uk``), the first duplicate-detection key (``core.company_rows``)
    domain: Mapped[str | None] = mapped_column(String(253))
    #: the name without its legal form, casefolded and folded: with the country, the second duplicate key
    name_key: Mapped[str | None] = mapped_column(String(300))
    industry: Mapped[str | None] = mapped_column(CleanString(200))
    nace_code: Mapped[str | None] = mapped_column(CleanString(16))
    country: Mapped[str | None] = mapped_column(CleanString(100))
    activity_description: Mapped[str | None] = mapped_column(CleanText)
    ownership_type: Mapped[str | None] = mapped_column(CleanString(100))
    status: Mapped[CompanyStatus] = mapped_column(_enum(CompanyStatus), default=CompanyStatus.ACTIVE)
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("companies.id", ondelete="SET NULL"))
    priority: Mapped[int] = mapped_column(Integer, default=0)
    enrichment_status: Mapped[EnrichmentStatus] = mapped_column(_enum(EnrichmentStatus), default=EnrichmentStatus.NEVER)
    enriched_at: Mapped[datetime | None]
    needs_review: Mapped[bool] = mapped_column(Boolean, default=False)
    review_reason: Mapped[str | None] = mapped_column(CleanText)
    #: the classification (``reclassify``): NACE Rev. 2 section (A-U) and division, and the business model, from
    #: the taxonomy of ``taxonomy_version``; how it was made (``local`` rules or an ``llm``, which ``model``) and
    #: the hash of the text it was made from, so a company whose input or taxonomy changed is *outdated*
    sector: Mapped[str | None] = mapped_column(String(1))
    subsector: Mapped[str | None] = mapped_column(String(2))
    business_model: Mapped[str | None] = mapped_column(String(32))
    taxonomy_version: Mapped[str | None] = mapped_column(String(64))
    classification_mode: Mapped[str | None] = mapped_column(String(16))
    classification_model: Mapped[str | None] = mapped_column(String(200))
    classification_input_sha256: Mapped[str | None] = mapped_column(String(64))
    classified_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    embeddings: Mapped[list[CompanyEmbedding]] = relationship(
        back_populates="company", cascade="all, delete-orphan", passive_deletes=True
    )

    __table_args__ = (
        Index("ix_companies_enrichment_due", "status", "enrichment_status", "enriched_at"),
        Index("ix_companies_domain", "domain"),
        Index("ix_companies_name_key", "name_key", "country"),
    )


class CompanyEmbedding(Base):
    """One vector per company and model; ``text_sha256`` makes re-embedding unchanged text a no-op."""

    __tablename__ = "company_embeddings"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"))
    model_id: Mapped[str] = mapped_column(String(200))
    dimension: Mapped[int] = mapped_column(Integer)
    text_sha256: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(CleanText)
    vector: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    company: Mapped[Company] = relationship(back_populates="embeddings")

    __table_args__ = (
        UniqueConstraint("company_id", "model_id", name="uq_company_embeddings_company_model"),
        Index("ix_company_embeddings_model", "model_id"),
    )


class BulkAction(Base):
    """One bulk action: what ran, over how many companies, how far it got and how it ended."""

    __tablename__ = "bulk_actions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    action: Mapped[str] = mapped_column(String(64))
    status: Mapped[BulkActionStatus] = mapped_column(_enum(BulkActionStatus), default=BulkActionStatus.PENDING)
    status_reason: Mapped[str | None] = mapped_column(CleanText)
    total: Mapped[int] = mapped_column(Integer, default=0)
    processed: Mapped[int] = mapped_column(Integer, default=0)
    succeeded: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    error_summary: Mapped[dict[str, Any] | None]
    parameters: Mapped[dict[str, Any] | None]
    created_by: Mapped[str] = mapped_column(String(200), default="unknown")
    priority: Mapped[int] = mapped_column(Integer, default=0)
    flow_run_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    #: set by ``pause_bulk_action``; the running engine sees it, lets in-flight batches finish and suspends
    pause_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("bulk_actions.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    outcomes: Mapped[list[BulkActionOutcome]] = relationship(
        back_populates="bulk_action", cascade="all, delete-orphan", passive_deletes=True
    )

    __table_args__ = (Index("ix_bulk_actions_status_finished", "status", "finished_at"),)


class BulkActionOutcome(Base):
    """A company's place and result in a bulk action.

    Rows are written as ``pending`` when the action is created, in selection order (``position``): that is the
    action's membership, which a rerun reads back to rebuild exactly the same batches (and so hit its checkpoints).
    """

    __tablename__ = "bulk_action_outcomes"

    bulk_action_id: Mapped[int] = mapped_column(ForeignKey("bulk_actions.id", ondelete="CASCADE"), primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    status: Mapped[OutcomeStatus] = mapped_column(_enum(OutcomeStatus), default=OutcomeStatus.PENDING)
    detail: Mapped[str | None] = mapped_column(CleanText)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    #: the message batch this company's request went in (LLM reclassify); NULL: not submitted yet
    message_batch_id: Mapped[int | None] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    bulk_action: Mapped[BulkAction] = relationship(back_populates="outcomes")

    __table_args__ = (Index("ix_bulk_action_outcomes_position", "bulk_action_id", "position"),)


class DeadJob(Base):
    """A company that still failed after its retries, kept for the dead-job review."""

    __tablename__ = "dead_jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    bulk_action_id: Mapped[int | None] = mapped_column(ForeignKey("bulk_actions.id", ondelete="SET NULL"))
    action: Mapped[str] = mapped_column(String(64))
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"))
    error_class: Mapped[str] = mapped_column(CleanString(200))
    error_message: Mapped[str] = mapped_column(CleanText)
    retryable: Mapped[bool] = mapped_column(Boolean, default=False)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[DeadJobStatus] = mapped_column(_enum(DeadJobStatus), default=DeadJobStatus.OPEN)
    requeue_count: Mapped[int] = mapped_column(Integer, default=0)
    #: the bulk action a requeue handed this job to (the dead-job review's link from the original)
    requeued_as_bulk_action_id: Mapped[int | None] = mapped_column(ForeignKey("bulk_actions.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None]

    __table_args__ = (
        UniqueConstraint("bulk_action_id", "company_id", name="uq_dead_jobs_action_company"),
        Index("ix_dead_jobs_status_action", "status", "action"),
    )


class CompanyScore(Base):
    """One criterion's score of a company by one provider and model; ``criterion="total"`` holds the 0-50 sum.

    One row per (company, criterion, provider, model), overwritten by a rescore: the table answers "what is this
    company's score now, and who gave it", a run that dies half-way can never leave duplicates, and scores of
    different models sit side by side for comparison.  The history of who scored what and when stays in the bulk
    actions and their outcomes.  ``input_sha256`` identifies the prompt (rubric version + company profile), so a
    new action skips companies whose current scores answer the same question.  Tokens are those of the calls
    behind the row (retries included); the total row carries the company's sum, so add up criterion rows only.
    """

    __tablename__ = "company_scores"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"))
    bulk_action_id: Mapped[int | None] = mapped_column(ForeignKey("bulk_actions.id", ondelete="SET NULL"))
    criterion: Mapped[str] = mapped_column(String(64))
    level: Mapped[str | None] = mapped_column(CleanString(16))
    score: Mapped[int] = mapped_column(Integer)
    reasoning: Mapped[str | None] = mapped_column(CleanText)
    provider: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(200))
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    input_sha256: Mapped[str] = mapped_column(String(64))
    #: which tier of a tiered scoring produced the row (0 = the first, cheapest); NULL for untiered scoring
    tier: Mapped[int | None] = mapped_column(Integer)
    scored_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        UniqueConstraint(
            "company_id", "criterion", "provider", "model", name="uq_company_scores_company_criterion_provider_model"
        ),
        Index("ix_company_scores_criterion_score", "criterion", "score"),
        Index("ix_company_scores_bulk_action", "bulk_action_id"),
    )


class BulkActionShard(Base):
    """One shard of a bulk action spread over several flow runs (``shards > 1``).

    A shard owns a contiguous range of the action's batches.  Its row says which flow run drives it now (a
    rerun takes it over), how it ended and its final counts; the parent flow run waits on these rows, so a
    shard rerun on its own (after its worker died) is seen by a parent that is still waiting.
    """

    __tablename__ = "bulk_action_shards"

    bulk_action_id: Mapped[int] = mapped_column(ForeignKey("bulk_actions.id", ondelete="CASCADE"), primary_key=True)
    shard_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    shards: Mapped[int] = mapped_column(Integer)
    status: Mapped[BulkActionStatus] = mapped_column(_enum(BulkActionStatus), default=BulkActionStatus.PENDING)
    status_reason: Mapped[str | None] = mapped_column(Text)
    flow_run_id: Mapped[str | None] = mapped_column(String(64))
    total: Mapped[int] = mapped_column(Integer, default=0)
    succeeded: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    #: what the shard's last flow run did: provider calls made and batches restored from checkpoints
    provider_calls: Mapped[int] = mapped_column(Integer, default=0)
    batches_from_checkpoint: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class CompanyHistory(Base):
    """One changed field of one company: what it was, what it became, which bulk action changed it and when.

    Written in the transaction of the change itself (``core.history``), so a change without its history row
    cannot exist; rollback reads it backwards.  Values are stored as text (JSON for non-strings), None as NULL.
    """

    __tablename__ = "company_history"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"))
    field: Mapped[str] = mapped_column(String(64))
    old_value: Mapped[str | None] = mapped_column(CleanText)
    new_value: Mapped[str | None] = mapped_column(CleanText)
    bulk_action_id: Mapped[int | None] = mapped_column(ForeignKey("bulk_actions.id", ondelete="SET NULL"))
    #: ``change`` (an action set the field), ``rolled_back`` (a rollback restored it), ``merge`` (a merge filled it)
    kind: Mapped[str] = mapped_column(String(16), default="change", server_default="change")
    changed_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        Index("ix_company_history_company", "company_id", "id"),
        Index("ix_company_history_bulk_action", "bulk_action_id"),
    )


class SpendAccount(Base):
    """A budget's running total: one bulk action, one creator's month, or one provider's month.

    ``spent`` is what settled calls cost and ``reserved`` what calls in flight may still cost at worst; a call
    starts only if ``spent + reserved + its worst case`` stays within ``limit`` in every account it charges
    (``core.spend``), checked and reserved in one conditional UPDATE, so concurrent batches and workers sharing
    the database can never overspend together.  ``limit_nanousd`` NULL means no budget (spend is still counted).
    """

    __tablename__ = "spend_accounts"

    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    limit_nanousd: Mapped[int | None] = mapped_column(BigInteger)
    spent_nanousd: Mapped[int] = mapped_column(BigInteger, default=0)
    reserved_nanousd: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class SpendReservation(Base):
    """The worst case of one call in flight, held against its accounts until the call settles.

    Kept as a row (not only as the accounts' ``reserved`` sums) so that the reservations of a flow run that
    died can be found and given back when its bulk action is resumed.
    """

    __tablename__ = "spend_reservations"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    bulk_action_id: Mapped[int | None] = mapped_column(ForeignKey("bulk_actions.id", ondelete="CASCADE"))
    flow_run_id: Mapped[str | None] = mapped_column(String(64))
    accounts: Mapped[list[str]] = mapped_column(JSON)
    amount_nanousd: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_spend_reservations_bulk_action", "bulk_action_id", "flow_run_id"),)


class SpendEntry(Base):
    """What one company's share of one paid call cost: the ledger every spend figure adds up from.

    Written in the transaction that settles the call against its budgets, so the ledger and the accounts always
    agree; retries the provider billed are separate calls here too.  ``input_bytes`` lets estimates learn how
    many tokens a provider counts per byte of prompt; ``unpriced`` marks calls run with ``allow_unpriced``.
    """

    __tablename__ = "spend_ledger"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    bulk_action_id: Mapped[int | None] = mapped_column(ForeignKey("bulk_actions.id", ondelete="SET NULL"))
    company_id: Mapped[int | None] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(64))
    provider: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(200))
    created_by: Mapped[str] = mapped_column(String(200))
    calls: Mapped[int] = mapped_column(Integer, default=1)
    input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    output_tokens: Mapped[int] = mapped_column(Integer, default=0)
    input_bytes: Mapped[int] = mapped_column(Integer, default=0)
    cost_nanousd: Mapped[int] = mapped_column(BigInteger, default=0)
    unpriced: Mapped[bool] = mapped_column(Boolean, default=False)
    tier: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        Index("ix_spend_ledger_bulk_action", "bulk_action_id"),
        Index("ix_spend_ledger_company", "company_id"),
        Index("ix_spend_ledger_provider_time", "provider", "created_at"),
        Index("ix_spend_ledger_creator_time", "created_by", "created_at"),
    )


# The message-batch, dedup and operations tables live in modules of their own; importing them here registers them on
# ``Base.metadata`` for every caller of this one (the migrations, ``create_all`` in tests).
from core import dedup_tables as _dedup_tables  # noqa: E402, F401
from core import message_batch_tables as _message_batch_tables  # noqa: E402, F401
from core import operations_tables as _operations_tables  # noqa: E402, F401
