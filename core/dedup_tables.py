"""Tables of the dedup sweep and the merge: proposed clusters, their members, the evidence, and what a merge moved.

A sweep (a bulk action ``dedup_sweep``) writes each cluster it finds with its members (the winner marked, each
member's ``updated_at`` as the sweep saw it, so a merge can refuse a cluster changed since) and the evidence of
every accepted pair (cosine, name similarity, same registrable domain, same country), for a reviewer to read.
A merge (a bulk action ``merge_companies``) records, besides the field changes in ``company_history`` (kind
``merge``), every row it re-pointed or closed in ``merge_moves``, so ``rollback`` can put each one back.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.clean_types import CleanText
from core.schema import Base, utcnow


class ClusterStatus:
    """A cluster's life (plain strings: a new state is a code change, not a migration)."""

    PROPOSED = "proposed"  # found by a sweep, waiting for review and merge
    MERGED = "merged"  # merged by ``merged_by``
    REFUSED = "refused"  # a merge refused it (``reason``: a member changed or merged since the sweep)
    EXCLUDED = "excluded"  # a reviewer left it out of a merge
    ROLLED_BACK = "rolled_back"  # its merge was rolled back


class DedupCluster(Base):
    __tablename__ = "dedup_clusters"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: the sweep that found it
    bulk_action_id: Mapped[int] = mapped_column(ForeignKey("bulk_actions.id", ondelete="CASCADE"))
    winner_id: Mapped[int] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"))
    size: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default=ClusterStatus.PROPOSED)
    #: why the winner won (the stated rule, with the deciding field)
    winner_reason: Mapped[str | None] = mapped_column(CleanText)
    #: why a merge refused it, or who excluded it
    reason: Mapped[str | None] = mapped_column(CleanText)
    #: the merge (bulk action) that merged it
    merged_by: Mapped[int | None] = mapped_column(ForeignKey("bulk_actions.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    __table_args__ = (Index("ix_dedup_clusters_sweep_status", "bulk_action_id", "status"),)


class DedupClusterMember(Base):
    __tablename__ = "dedup_cluster_members"

    cluster_id: Mapped[int] = mapped_column(ForeignKey("dedup_clusters.id", ondelete="CASCADE"), primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"), primary_key=True)
    is_winner: Mapped[bool] = mapped_column(Boolean, default=False)
    #: the member's ``updated_at`` when the sweep read it: a later change refuses the cluster at merge time
    seen_updated_at: Mapped[datetime]

    __table_args__ = (Index("ix_dedup_cluster_members_company", "company_id"),)


class DedupPair(Base):
    """One accepted pair and why: the evidence a reviewer reads.

    The sweep's batches write their pairs as they find them (``cluster_id`` NULL; a pair found from both sides is
    one row), in the transaction of their outcomes; the clustering at the end sets ``cluster_id``.
    """

    __tablename__ = "dedup_pairs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: the sweep that found it
    bulk_action_id: Mapped[int] = mapped_column(ForeignKey("bulk_actions.id", ondelete="CASCADE"))
    cluster_id: Mapped[int | None] = mapped_column(ForeignKey("dedup_clusters.id", ondelete="CASCADE"))
    company_a: Mapped[int] = mapped_column(Integer)
    company_b: Mapped[int] = mapped_column(Integer)
    cosine: Mapped[float | None] = mapped_column(Float)
    name_score: Mapped[float | None] = mapped_column(Float)
    #: None: either company has no registrable domain (country) to compare
    same_domain: Mapped[bool | None] = mapped_column(Boolean)
    same_country: Mapped[bool | None] = mapped_column(Boolean)
    #: which rule accepted the pair (for example "domain", "name+vector")
    rule: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        UniqueConstraint("bulk_action_id", "company_a", "company_b", name="uq_dedup_pairs_sweep_pair"),
        Index("ix_dedup_pairs_cluster", "cluster_id"),
    )


class MergeMove(Base):
    """One row a merge re-pointed from a loser to the winner, or closed: what rollback puts back."""

    __tablename__ = "merge_moves"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: the merge (bulk action)
    bulk_action_id: Mapped[int] = mapped_column(ForeignKey("bulk_actions.id", ondelete="CASCADE"))
    cluster_id: Mapped[int] = mapped_column(ForeignKey("dedup_clusters.id", ondelete="CASCADE"))
    #: the table and primary key of the row (``company_scores``, ``dead_jobs``...)
    table_name: Mapped[str] = mapped_column(String(64))
    row_id: Mapped[int] = mapped_column(Integer)
    #: ``moved`` (company_id loser → winner) or ``closed`` (a dead job discarded); and the values before
    kind: Mapped[str] = mapped_column(String(16))
    from_company_id: Mapped[int] = mapped_column(Integer)
    to_company_id: Mapped[int | None] = mapped_column(Integer)
    before: Mapped[str | None] = mapped_column(CleanText)
    undone_by: Mapped[int | None] = mapped_column(ForeignKey("bulk_actions.id", ondelete="SET NULL"))

    __table_args__ = (Index("ix_merge_moves_action", "bulk_action_id"),)
