"""dedup_sweep end to end: synthetic companies with known near-duplicates, real MiniLM vectors, the engine.

The generator knows its duplicates (``duplicate_of``, name typos included); the sweep must find them (and little
else), store them as clusters with a winner and the evidence, show them as an artifact, resume without writing a
pair twice, and never look at merged companies or at vectors of another model.
"""

from __future__ import annotations

import numpy as np
from prefect.client.orchestration import get_client
from sqlalchemy import func, insert, select, update

from blocks.database import CompanyDatabase
from core.dedup_tables import DedupCluster, DedupClusterMember, DedupPair
from core.schema import BulkActionOutcome, Company, CompanyEmbedding, CompanyStatus, OutcomeStatus
from core.synthetic import generate_companies, seed_companies
from flows.action_end import artifact_key
from flows.dedup_sweep import DedupSweepSummary, dedup_sweep
from flows.generate_embeddings import generate_embeddings

N, SEED = 160, 4401


def seeded(db: CompanyDatabase, seed: int) -> tuple[list[int], set[tuple[int, int]]]:
    """Synthetic companies with 12% near-duplicates; their ids and the true duplicate pairs."""
    with db.session() as session:
        ids = seed_companies(session, N, seed=seed, duplicate_fraction=0.12)
    truth = {
        (min(ids[i], ids[c.duplicate_of]), max(ids[i], ids[c.duplicate_of]))
        for i, c in enumerate(generate_companies(N, seed=seed, duplicate_fraction=0.12))
        if c.duplicate_of is not None
    }
    return ids, truth


def found_pairs(db: CompanyDatabase, sweep_id: int, ids: list[int]) -> set[tuple[int, int]]:
    mine = set(ids)
    with db.read_session() as session:
        rows = session.execute(
            select(DedupPair.company_a, DedupPair.company_b).where(DedupPair.bulk_action_id == sweep_id)
        ).all()
    return {(a, b) for a, b in rows if a in mine and b in mine}


def test_the_sweep_finds_the_known_duplicates_and_proposes_clusters_with_evidence(
    db: CompanyDatabase, database_name: str
) -> None:
    ids, truth = seeded(db, SEED)
    generate_embeddings(company_ids=ids, database=database_name)

    summary = dedup_sweep(company_ids=ids, database=database_name)

    assert isinstance(summary, DedupSweepSummary) and summary.status == "completed"
    found = found_pairs(db, summary.bulk_action_id, ids)
    hits = found & truth
    assert len(truth) >= 12 and len(hits) / len(truth) >= 0.9, (len(hits), len(truth))
    assert len(hits) / max(len(found), 1) >= 0.9, sorted(found - truth)
    with db.read_session() as session:
        clusters = session.scalars(
            select(DedupCluster).where(DedupCluster.bulk_action_id == summary.bulk_action_id)
        ).all()
        members = session.execute(
            select(DedupClusterMember.cluster_id, DedupClusterMember.company_id, DedupClusterMember.is_winner).where(
                DedupClusterMember.cluster_id.in_([c.id for c in clusters])
            )
        ).all()
    assert clusters and summary.clusters == len(clusters)
    for cluster in clusters:
        of_cluster = [(cid, winner) for cluster_id, cid, winner in members if cluster_id == cluster.id]
        assert len(of_cluster) == cluster.size >= 2
        assert [cid for cid, winner in of_cluster if winner] == [cluster.winner_id]
        assert cluster.winner_reason and cluster.status == "proposed"
    with get_client(sync_client=True) as client:
        artifact = client.read_latest_artifacts(key=artifact_key("dedup_sweep", summary.bulk_action_id, "clusters"))
    assert artifact is not None

    # a rerun of the finished sweep writes no pair twice and keeps its clusters
    again = dedup_sweep(bulk_action_id=summary.bulk_action_id, database=database_name)
    assert isinstance(again, DedupSweepSummary) and (again.pairs, again.clusters) == (summary.pairs, summary.clusters)


def test_merged_companies_and_companies_without_a_vector_of_the_model_are_left_out(
    db: CompanyDatabase, database_name: str
) -> None:
    ids, truth = seeded(db, SEED + 1)
    embedded, bare = ids[: N - 10], ids[N - 10 :]
    generate_embeddings(company_ids=embedded, database=database_name)
    a, b = sorted(truth)[0]
    with db.session() as session:
        # vectors of another model: never compared with MiniLM's, so these companies still have no vector here
        session.execute(
            insert(CompanyEmbedding),
            [
                {
                    "company_id": cid,
                    "model_id": "other-model",
                    "dimension": 384,
                    "text_sha256": "x" * 64,
                    "text": "other",
                    "vector": np.ones(384, np.float32).tobytes(),
                }
                for cid in bare
            ],
        )
        session.execute(update(Company).where(Company.id == b).values(status=CompanyStatus.MERGED, merged_into_id=a))

    summary = dedup_sweep(company_ids=ids, database=database_name)

    assert isinstance(summary, DedupSweepSummary)
    involved = {c for pair in found_pairs(db, summary.bulk_action_id, ids) for c in pair}
    assert b not in involved  # a merged company is no longer compared
    with db.read_session() as session:
        skipped = session.scalar(
            select(func.count()).where(
                BulkActionOutcome.bulk_action_id == summary.bulk_action_id,
                BulkActionOutcome.status == OutcomeStatus.SKIPPED,
                BulkActionOutcome.company_id.in_(bare),
            )
        )
    assert skipped == 10 and summary.without_vector >= 10
