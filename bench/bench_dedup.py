"""Benchmark: the dedup sweep against the synthetic ground truth, its speed, and exact merge rollbacks (#15).

The companies are ``core.synthetic`` companies inserted into the bench database with their MiniLM vectors (the
vectors come from ``bench/dedup_quality.py``'s cache, computed once in a child process: 100,000 take about half an
hour on two cores the first time), so the timed sweep is the ``dedup_sweep`` flow itself, on the engine, over
companies whose vectors exist.

* ``dedup_precision`` / ``dedup_recall``: the pairs the sweep stored vs the ``duplicate_of`` truth (every two
  members of one duplicate tree), 10,000 companies, seed 11, default parameters (targets >= 0.98 / >= 0.95).
* ``dedup_precision_100k`` / ``dedup_recall_100k``: the same on 100,000 (seed 12).
* ``dedup_seconds_100k``: the sweep's wall time on those 100,000 (target <= 30).
* ``merge_rollback_exact``: every cluster of the 10,000 sweep merged, then the merge rolled back: the share of
  clusters whose members' rows (companies, scores, dead jobs) equal what they were before (target 1.0).

``BENCH_DEDUP_SIZES=10000`` runs the first size only.  Pairs with a company outside the seeded set (another
benchmark's companies in the same database) are not counted either way.  Standalone: ``python -m bench dedup``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from typing import Any

logger = logging.getLogger(__name__)

SIZES = ((10_000, 11), (100_000, 12))


def run() -> dict[str, float]:
    results: dict[str, float] = {}
    sizes = [int(size) for size in os.environ.get("BENCH_DEDUP_SIZES", "10000,100000").split(",")]
    for n, seed in (pair for pair in SIZES if pair[0] in sizes):
        ids, truth = _seed_with_vectors(n, seed)
        started = time.perf_counter()
        summary = _sweep(ids)
        seconds = time.perf_counter() - started
        precision, recall = _quality(summary.bulk_action_id, ids, truth)
        suffix = "" if n == 10_000 else "_100k"
        results[f"dedup_precision{suffix}"] = precision
        results[f"dedup_recall{suffix}"] = recall
        logger.warning(
            "dedup sweep over %d: %d pairs, %d clusters, precision %.4f recall %.4f, %.1f s",
            n,
            summary.pairs,
            summary.clusters,
            precision,
            recall,
            seconds,
        )
        if n == 100_000:
            results["dedup_seconds_100k"] = seconds
        else:
            results["merge_rollback_exact"] = _merge_and_roll_back(summary.bulk_action_id)
    return results


def _seed_with_vectors(n: int, seed: int) -> tuple[list[int], set[tuple[int, int]]]:
    """Insert the synthetic companies and their MiniLM vectors; their ids and the true pairs (as ids)."""
    from sqlalchemy import Table

    from bench.dedup_quality import truth_pairs, vectors_for
    from blocks.loading import load_database
    from core.schema import CompanyEmbedding, utcnow
    from core.store import insert_rows
    from core.synthetic import generate_companies, seed_companies
    from core.text import embedding_text
    from providers.local_minilm import MODEL_ID

    companies = generate_companies(n, seed=seed)
    vectors = vectors_for(companies, n, seed)
    db = load_database("default")
    with db.session() as session:
        ids = seed_companies(session, n, seed=seed)
        table: Table = CompanyEmbedding.__table__  # type: ignore[assignment]
        rows = []
        for cid, company, vector in zip(ids, companies, vectors, strict=True):
            text = embedding_text(company)
            rows.append((cid, text, hashlib.sha256(text.encode()).hexdigest(), vector.astype("float32").tobytes()))
        now = utcnow()
        constants = {"model_id": MODEL_ID, "dimension": int(vectors.shape[1]), "created_at": now, "updated_at": now}
        insert_rows(session, table, constants, ("company_id", "text", "text_sha256", "vector"), rows)
    truth = {(min(ids[a], ids[b]), max(ids[a], ids[b])) for a, b in truth_pairs(companies)}
    return ids, truth


def _sweep(ids: list[int]) -> Any:
    from flows.dedup_sweep import dedup_sweep

    marker = _mark(ids)
    return dedup_sweep(selection={"filter": {"name_contains": marker}}, max_companies=len(ids))


def _mark(ids: list[int]) -> str:
    """Select exactly these companies by a name part of their own (the name keys stay as the import made them)."""
    from bench.bench_reclassify import _rename

    marker = f"dd{int(time.time() * 1000) % 10**9}"
    _rename(ids, marker)
    return marker


def _quality(sweep_id: int, ids: list[int], truth: set[tuple[int, int]]) -> tuple[float, float]:
    from sqlalchemy import select

    from blocks.loading import load_database
    from core.dedup_tables import DedupPair

    mine = set(ids)
    with load_database("default").read_session() as session:
        rows = session.execute(
            select(DedupPair.company_a, DedupPair.company_b).where(DedupPair.bulk_action_id == sweep_id)
        ).all()
    found = {(a, b) for a, b in rows if a in mine and b in mine}
    hits = len(found & truth)
    return hits / max(len(found), 1), hits / max(len(truth), 1)


def _merge_and_roll_back(sweep_id: int) -> float:
    from flows.merge_companies import merge_companies
    from flows.rollback import rollback

    clusters = _cluster_members(sweep_id)
    before = _rows([c for members in clusters.values() for c in members])
    merged: Any = merge_companies(sweep_id=sweep_id)
    undone: Any = rollback(rollback_of=merged.bulk_action_id, max_companies=10**6)
    after = _rows([c for members in clusters.values() for c in members])
    exact = sum(all(before[c] == after[c] for c in members) for members in clusters.values())
    logger.warning(
        "merge: %d clusters merged; rollback restored %d companies; %d of %d clusters exact",
        merged.clusters_merged,
        undone.succeeded,
        exact,
        len(clusters),
    )
    return exact / max(len(clusters), 1)


def _cluster_members(sweep_id: int) -> dict[int, list[int]]:
    from sqlalchemy import select

    from blocks.loading import load_database
    from core.dedup_tables import DedupCluster, DedupClusterMember

    with load_database("default").read_session() as session:
        rows = session.execute(
            select(DedupClusterMember.cluster_id, DedupClusterMember.company_id)
            .join(DedupCluster, DedupCluster.id == DedupClusterMember.cluster_id)
            .where(DedupCluster.bulk_action_id == sweep_id)
        ).all()
    members: dict[int, list[int]] = {}
    for cluster_id, company_id in rows:
        members.setdefault(cluster_id, []).append(company_id)
    return members


def _rows(ids: list[int]) -> dict[int, tuple[Any, ...]]:
    """Each company's full row (but ``updated_at``, which every write moves) with its scores and dead jobs."""
    from sqlalchemy import select

    from blocks.loading import load_database
    from core.schema import Company, CompanyScore, DeadJob

    columns = [c for c in Company.__table__.c if c.name != "updated_at"]
    found: dict[int, tuple[Any, ...]] = {}
    with load_database("default").read_session() as session:
        for start in range(0, len(ids), 900):
            part = ids[start : start + 900]
            scores: dict[int, list[Any]] = {}
            for row in session.execute(select(CompanyScore).where(CompanyScore.company_id.in_(part))).scalars():
                scores.setdefault(row.company_id, []).append((row.id, row.criterion, row.score, row.model))
            jobs: dict[int, list[Any]] = {}
            for job in session.execute(select(DeadJob).where(DeadJob.company_id.in_(part))).scalars():
                jobs.setdefault(job.company_id, []).append((job.id, job.status))
            for row in session.execute(select(*columns).where(Company.id.in_(part))):
                cid = row[0]
                found[cid] = (tuple(row), tuple(sorted(scores.get(cid, []))), tuple(sorted(jobs.get(cid, []))))
    return found


if __name__ == "__main__":
    from bench.environment import prefect_environment

    with prefect_environment():
        print(run())
