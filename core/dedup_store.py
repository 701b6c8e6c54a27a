"""The database side of the dedup sweep: what it compares, the pairs it found, the clusters it proposes.

The *universe* of a sweep is every active company with a vector of its one model (vectors of two models are
never compared), with the keys the pair decision reads (``core.dedup_signals``): the stored name key and
registrable domain where an import computed them, computed here for companies that have none.  The sweep's
batches store the accepted pairs (``dedup_pairs``, one row per pair); its end reads them back, builds the
clusters (``core.dedup_clusters``) and stores them with their members as the sweep saw them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import numpy as np
import numpy.typing as npt
from sqlalchemy import Table, exists, func, insert, select
from sqlalchemy.orm import Session

from core.dedup_clusters import DuplicateCluster, MemberFacts
from core.dedup_decision import PairEvidence
from core.dedup_keys import keys_of
from core.dedup_signals import CompanySignals, signals_from_keys
from core.dedup_tables import ClusterStatus, DedupCluster, DedupClusterMember, DedupPair
from core.schema import (
    BulkAction,
    BulkActionOutcome,
    Company,
    CompanyEmbedding,
    CompanyScore,
    CompanyStatus,
    EnrichmentStatus,
)
from core.store import chunked, update_rows, upsert

#: the fields whose filling makes a company "more complete" (the winner rule's first criterion)
COMPLETENESS_FIELDS = (
    "website",
    "industry",
    "nace_code",
    "country",
    "activity_description",
    "ownership_type",
    "sector",
    "subsector",
    "business_model",
)


@dataclass(frozen=True)
class Universe:
    """Row ``i``: company ``ids[i]``, its vector ``vectors[i]`` (unit length) and its signals."""

    model_id: str
    ids: npt.NDArray[np.int64]
    vectors: npt.NDArray[np.float32]
    signals: CompanySignals

    def __len__(self) -> int:
        return len(self.ids)


def load_universe(session: Session, model_id: str) -> Universe:
    """Every active company with a vector of ``model_id``, in id order."""
    rows = session.execute(
        select(
            Company.id,
            Company.name,
            Company.website,
            Company.name_key,
            Company.domain,
            Company.country,
            CompanyEmbedding.dimension,
            CompanyEmbedding.vector,
        )
        .join(CompanyEmbedding, CompanyEmbedding.company_id == Company.id)
        .where(Company.status == CompanyStatus.ACTIVE, CompanyEmbedding.model_id == model_id)
        .order_by(Company.id)
    ).all()
    if not rows:
        return Universe(model_id, np.zeros(0, np.int64), np.zeros((0, 0), np.float32), signals_from_keys([], [], []))
    dimensions = {row.dimension for row in rows}
    if len(dimensions) != 1:
        raise ValueError(f"vectors of model {model_id!r} have several dimensions: {sorted(dimensions)}")
    vectors = np.frombuffer(b"".join(row.vector for row in rows), dtype=np.float32).reshape(len(rows), -1).copy()
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors /= np.where(norms == 0, 1, norms)
    name_keys: list[str | None] = []
    domains: list[str | None] = []
    for row in rows:
        if row.name_key is None:  # not imported through the import pipeline: compute the keys as it would
            keys = keys_of(row.name, row.website)
            name_keys.append(keys["name_key"])
            domains.append(keys["domain"])
        else:
            name_keys.append(row.name_key)
            domains.append(row.domain)
    signals = signals_from_keys(name_keys, domains, [row.country for row in rows])
    return Universe(model_id, np.fromiter((row.id for row in rows), np.int64, len(rows)), vectors, signals)


def sweep_companies(session: Session, bulk_action_id: int) -> set[int]:
    """The companies a sweep looks for duplicates of (its outcome rows)."""
    return set(
        session.scalars(select(BulkActionOutcome.company_id).where(BulkActionOutcome.bulk_action_id == bulk_action_id))
    )


def store_pairs(session: Session, bulk_action_id: int, pairs: Sequence[PairEvidence]) -> None:
    """Write accepted pairs (``left``/``right`` are company ids here); a pair found again stays one row."""
    upsert(
        session,
        cast(Table, DedupPair.__table__),
        [
            {
                "bulk_action_id": bulk_action_id,
                "company_a": p.left,
                "company_b": p.right,
                "cosine": p.cosine,
                "name_score": p.name_score,
                "same_domain": p.same_domain,
                "same_country": p.same_country,
                "rule": p.rule,
            }
            for p in pairs
        ],
        keys=("bulk_action_id", "company_a", "company_b"),
        update_cols=("rule",),  # a pair found again (a rerun batch) is the same pair
    )


def stored_pairs(session: Session, bulk_action_id: int) -> list[PairEvidence]:
    rows = session.execute(
        select(
            DedupPair.company_a,
            DedupPair.company_b,
            DedupPair.cosine,
            DedupPair.name_score,
            DedupPair.same_domain,
            DedupPair.same_country,
            DedupPair.rule,
        ).where(DedupPair.bulk_action_id == bulk_action_id)
    ).all()
    return [
        PairEvidence(a, b, float(cos or 0.0), float(name or 0.0), same_domain, same_country, rule or "", ())
        for a, b, cos, name, same_domain, same_country, rule in rows
    ]


def member_facts(session: Session, company_ids: Sequence[int]) -> list[MemberFacts]:
    """What the winner rule weighs, per company: filled fields, enriched, scored, created."""
    columns = [Company.__table__.c[name] for name in COMPLETENESS_FIELDS]
    facts: list[MemberFacts] = []
    for part in chunked(sorted(company_ids), 500):
        scored = exists().where(CompanyScore.company_id == Company.id)
        rows = session.execute(
            select(Company.id, Company.enrichment_status, Company.created_at, scored.label("scored"), *columns).where(
                Company.id.in_(part)
            )
        ).all()
        for row in rows:
            filled = sum(value not in (None, "") for value in row[4:])
            facts.append(
                MemberFacts(
                    company_id=row.id,
                    filled_fields=filled,
                    enriched=row.enrichment_status is EnrichmentStatus.ENRICHED,
                    scored=bool(row.scored),
                    created_at=row.created_at,
                )
            )
    return facts


def clusters_stored(session: Session, bulk_action_id: int) -> int:
    return int(
        session.scalar(
            select(func.count()).select_from(DedupCluster).where(DedupCluster.bulk_action_id == bulk_action_id)
        )
        or 0
    )


def companies_in_clusters(session: Session, bulk_action_id: int) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(DedupClusterMember)
            .join(DedupCluster, DedupCluster.id == DedupClusterMember.cluster_id)
            .where(DedupCluster.bulk_action_id == bulk_action_id)
        )
        or 0
    )


def sweep_model(session: Session, bulk_action_id: int) -> str:
    """The embedding model a sweep compared (from its stored options)."""
    record = session.get(BulkAction, bulk_action_id)
    options = dict((record.parameters or {}).get("options") or {}) if record is not None else {}
    return str(options.get("model_id", ""))


def store_clusters(session: Session, bulk_action_id: int, clusters: Sequence[DuplicateCluster]) -> None:
    """Write the sweep's clusters with their members (and the ``updated_at`` each had) and link their pairs."""
    members = [m for c in clusters for m in c.members]
    seen: dict[int, datetime] = {}
    for part in chunked(members, 500):
        rows = session.execute(select(Company.id, Company.updated_at).where(Company.id.in_(part))).all()
        seen.update((cid, updated) for cid, updated in rows)
    links: list[tuple[int, int, int, int]] = []  # (cluster, sweep, a, b): the pairs' cluster, in one executemany
    for cluster in clusters:
        cluster_id = session.execute(
            insert(DedupCluster)
            .values(
                bulk_action_id=bulk_action_id,
                winner_id=cluster.winner,
                size=len(cluster.members),
                status=ClusterStatus.PROPOSED,
                winner_reason=cluster.winner_reason,
            )
            .returning(DedupCluster.id)
        ).scalar_one()
        session.execute(
            insert(DedupClusterMember),
            [
                {
                    "cluster_id": cluster_id,
                    "company_id": cid,
                    "is_winner": cid == cluster.winner,
                    "seen_updated_at": seen[cid],
                }
                for cid in cluster.members
            ],
        )
        links.extend((cluster_id, bulk_action_id, pair.left, pair.right) for pair in cluster.pairs)
    pair_key = ("bulk_action_id", "company_a", "company_b")
    update_rows(session, cast(Table, DedupPair.__table__), pair_key, {}, ("cluster_id",), links)


def cluster_rows(session: Session, bulk_action_id: int, limit: int = 500) -> list[dict[str, Any]]:
    """The sweep's clusters as a reviewer reads them: one row per member, the winner first."""
    clusters = session.execute(
        select(DedupCluster.id, DedupCluster.winner_id, DedupCluster.size, DedupCluster.winner_reason)
        .where(DedupCluster.bulk_action_id == bulk_action_id)
        .order_by(DedupCluster.id)
        .limit(limit)
    ).all()
    if not clusters:
        return []
    ids = [c.id for c in clusters]
    members = session.execute(
        select(DedupClusterMember.cluster_id, Company.id, Company.name, Company.website, Company.country)
        .join(Company, Company.id == DedupClusterMember.company_id)
        .where(DedupClusterMember.cluster_id.in_(ids))
        .order_by(DedupClusterMember.cluster_id, Company.id)
    ).all()
    evidence: dict[tuple[int, int], Any] = {}
    for pair in session.execute(select(DedupPair).where(DedupPair.cluster_id.in_(ids))).scalars():
        evidence[(pair.cluster_id or 0, pair.company_b)] = pair
        evidence.setdefault((pair.cluster_id or 0, pair.company_a), pair)
    by_cluster = {c.id: c for c in clusters}
    rows: list[dict[str, Any]] = []
    for cluster_id, cid, name, website, country in sorted(
        members, key=lambda m: (m[0], m[1] != by_cluster[m[0]].winner_id, m[1])
    ):
        cluster = by_cluster[cluster_id]
        found = evidence.get((cluster_id, cid))
        rows.append(
            {
                "cluster": cluster_id,
                "role": "winner" if cid == cluster.winner_id else "merge into winner",
                "company": cid,
                "name": name,
                "website": website or "",
                "country": country or "",
                "cosine": round(found.cosine, 3) if found is not None and found.cosine is not None else "",
                "name_score": round(found.name_score, 3) if found is not None and found.name_score is not None else "",
                "same_domain": found.same_domain if found is not None else "",
                "rule": found.rule if found is not None else "",
                "why_winner": cluster.winner_reason if cid == cluster.winner_id else "",
            }
        )
    return rows
