"""dedup_sweep: find the near-duplicates among companies and propose clusters to merge, with the evidence.

The sweep compares the selected companies (all active ones by default, or another action's companies) with every
active company that has a vector of one embedding model, on four signals: the vectors' cosine, the names'
similarity, the registrable domain and the country (``core.dedup_decision``: blocking, then scored rules with
two thresholds a reviewer can move).  It runs on the engine: batches of the selected companies, each writing its
accepted pairs with its outcomes, so a rerun resumes from the batches' checkpoints.  At the end the pairs become
clusters (connected components), each with a winner by the stated rule (``core.dedup_clusters``), stored and
shown as a table artifact; ``merge_companies(sweep_id=...)`` merges them after review.

Companies without a vector of the model are reported (their outcome says so) or, with ``missing_vectors="embed"``,
embedded first by the ``embeddings`` block.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact
from prefect.client.schemas.objects import State
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import Field

import blocks.local_database  # noqa: F401 - registers the block type of the action's provider
from blocks.loading import load_database, load_embedding_block
from core.catalog import get_action
from core.dedup_clusters import build_clusters
from core.dedup_decision import DEFAULT_NAME_THRESHOLD, DEFAULT_VECTOR_THRESHOLD
from core.dedup_store import (
    cluster_rows,
    clusters_stored,
    companies_in_clusters,
    member_facts,
    store_clusters,
    stored_pairs,
    sweep_model,
)
from core.selection import Selection, selection_of
from flows.action_end import artifact_key
from flows.engine import BULK_ACTION_HOOKS, BulkActionRequest, BulkActionSummary, DryRunReport, run_bulk_action
from flows.generate_embeddings import DEFAULT_EMBEDDING_PROVIDER, generate_embeddings

DEFAULT_PROVIDER = get_action("dedup_sweep").default_provider
#: all active companies (the selection's default statuses)
ALL_ACTIVE: dict[str, Any] = {"filter": {}}
MAX_SWEEP = 2_000_000


@dataclass(frozen=True)
class DedupSweepSummary(BulkActionSummary):
    """The engine's summary and what the sweep proposes."""

    model_id: str = ""
    pairs: int = 0
    clusters: int = 0
    companies_in_clusters: int = 0
    #: selected companies skipped for having no vector of the model
    without_vector: int = 0

    def as_rows(self) -> list[dict[str, Any]]:
        extra = ("model_id", "pairs", "clusters", "companies_in_clusters", "without_vector")
        return [*super().as_rows(), *({"metric": name, "value": getattr(self, name)} for name in extra)]


@flow(
    name="dedup-sweep",
    task_runner=ThreadPoolTaskRunner(max_workers=4),  # type: ignore[arg-type]
    validate_parameters=True,
    **BULK_ACTION_HOOKS,
)
def dedup_sweep(
    selection: Selection | None = None,
    company_ids: list[int] | None = None,
    embeddings: str = DEFAULT_EMBEDDING_PROVIDER,
    vector_threshold: float = Field(default=DEFAULT_VECTOR_THRESHOLD, ge=0.5, le=1.0),
    name_threshold: float = Field(default=DEFAULT_NAME_THRESHOLD, ge=0.5, le=1.0),
    missing_vectors: Literal["report", "embed"] = "report",
    database: str = "default",
    created_by: str = "prefect",
    bulk_action_id: int | None = None,
    failure_threshold: float = 0.5,
    progress_every: int = 5,
    max_companies: int = MAX_SWEEP,
    takeover: bool = False,
    dry_run: bool = False,
) -> DedupSweepSummary | BulkActionSummary | DryRunReport | State[Any]:
    """Find near-duplicate companies and propose clusters for ``merge_companies``.

    Args:
        selection: whose duplicates to look for (default: all active companies); e.g. ``{"from_action":
            {"bulk_action_id": 12}}`` for the companies an import added.
        company_ids: shorthand for ``selection={"ids": [...]}``.
        embeddings: the embedding block whose model's vectors are compared (vectors of other models never are).
        vector_threshold: the cosine two companies' vectors need (with alike names, or the same domain).
        name_threshold: how alike two names must be (rapidfuzz ratio of the names without legal form, 0-1).
        missing_vectors: ``report`` companies without a vector of the model, or ``embed`` them first.
        database: name of the company-database block.
        created_by: who asked, recorded on the bulk action.
        bulk_action_id: resume this sweep (its completed batches come from their checkpoints).
        failure_threshold: share of failed companies above which the sweep ends ``failed``.
        progress_every: write progress to the database every this many batches.
        max_companies: refuse selections larger than this.
        takeover: with ``bulk_action_id``, take the sweep over from a flow run whose process is gone.
        dry_run: resolve the selection and report its size; write nothing.
    """
    chosen = selection_of(company_ids, selection)
    if chosen is None and bulk_action_id is None:
        chosen = Selection.model_validate(ALL_ACTIVE)
    model_id = str(load_embedding_block(embeddings).get_client().model_id)
    if missing_vectors == "embed" and chosen is not None and not dry_run:
        generate_embeddings(
            selection=chosen, provider=embeddings, database=database, created_by=created_by, max_companies=max_companies
        )
    result = run_bulk_action(
        BulkActionRequest(
            action="dedup_sweep",
            selection=chosen,
            provider=DEFAULT_PROVIDER,
            database=database,
            created_by=created_by,
            bulk_action_id=bulk_action_id,
            failure_threshold=failure_threshold,
            progress_every=progress_every,
            max_companies=max_companies,
            takeover=takeover,
            dry_run=dry_run,
            options={"model_id": model_id, "vector_threshold": vector_threshold, "name_threshold": name_threshold},
        )
    )
    if not isinstance(result, BulkActionSummary) or result.status != "completed":
        return result
    return _propose_clusters(database, result)


def _propose_clusters(database: str, summary: BulkActionSummary) -> DedupSweepSummary:
    """Cluster the sweep's pairs (once: a rerun of a finished sweep keeps its clusters) and publish them."""
    db = load_database(database)
    sweep_id = summary.bulk_action_id
    with db.session() as session:
        pairs = stored_pairs(session, sweep_id)
        if not clusters_stored(session, sweep_id):
            companies = sorted({c for p in pairs for c in (p.left, p.right)})
            facts = member_facts(session, companies)
            row = {fact.company_id: i for i, fact in enumerate(facts)}
            by_row = [replace(p, left=row[p.left], right=row[p.right]) for p in pairs]
            store_clusters(session, sweep_id, build_clusters(by_row, facts))
        rows = cluster_rows(session, sweep_id)
        clusters = clusters_stored(session, sweep_id)
        in_clusters = companies_in_clusters(session, sweep_id)
        record = sweep_model(session, sweep_id)
    create_table_artifact(
        rows or [{"cluster": "", "role": "no duplicates found"}],
        key=artifact_key("dedup_sweep", sweep_id, "clusters"),
        description=(
            f"Dedup sweep {sweep_id}: {clusters} clusters over {in_clusters} companies from {len(pairs)} pairs "
            f"(model {record}); review, then merge_companies(sweep_id={sweep_id}, cluster_ids=[...], "
            "exclude_cluster_ids=[...])"
        ),
    )
    get_run_logger().info(
        "dedup sweep %d: %d pairs, %d clusters over %d companies", sweep_id, len(pairs), clusters, in_clusters
    )
    return summary.extended(
        DedupSweepSummary,
        model_id=record,
        pairs=len(pairs),
        clusters=clusters,
        companies_in_clusters=in_clusters,
        without_vector=summary.skipped,
    )


if __name__ == "__main__":
    dedup_sweep()
