"""merge_companies: merge the reviewed duplicate clusters of a dedup sweep, with history; undone by rollback.

The clusters to merge are all the sweep's ``proposed`` ones, or the ones a reviewer names (``cluster_ids``;
naming an excluded cluster takes it back in), minus ``exclude_cluster_ids`` (marked ``excluded`` with who did
it).  The merge runs on the engine with the clusters' winners as its selection: one outcome per cluster, 10
clusters per call, with progress, cancellation and resumption like every action.  What a merge does to a
cluster, and what it moves, is ``core.merge``'s rule; ``rollback`` with ``rollback_of=<the merge>`` undoes it.
``dry_run`` reports what would merge and what would be refused, and writes nothing.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact
from prefect.client.schemas.objects import State
from prefect.states import Completed
from prefect.task_runners import ThreadPoolTaskRunner

import blocks.local_database  # noqa: F401 - registers the block type of the action's provider
from blocks.loading import load_database
from core.catalog import DEFAULT_MAX_COMPANIES, get_action
from core.dedup_tables import ClusterStatus
from core.errors import InputError
from core.merge import MERGE_ACTION, MergePlan, Verdict
from core.merge_report import ClusterOutcome, merge_outcomes
from core.merge_store import ClusterChoice, choose_clusters, plan_merges, set_cluster_status
from core.schema import BulkAction
from core.selection import MAX_EXPLICIT_IDS, selection_of
from flows.action_end import artifact_key
from flows.engine import BULK_ACTION_HOOKS, BulkActionRequest, BulkActionSummary, DryRunReport, run_bulk_action

DEFAULT_PROVIDER = get_action(MERGE_ACTION).default_provider
#: clusters listed in the artifacts (the counts cover them all)
ARTIFACT_ROWS = 1000


@dataclass(frozen=True)
class MergeSummary(BulkActionSummary):
    """A merge's summary: the engine's counts per winner, and what became of the clusters."""

    sweep_id: int = 0
    clusters_merged: int = 0
    clusters_refused: int = 0
    clusters_already_merged: int = 0
    clusters_excluded: int = 0
    #: losers marked merged into their winner
    companies_merged: int = 0

    def as_rows(self) -> list[dict[str, Any]]:
        extra = ("sweep_id", "clusters_merged", "clusters_refused", "clusters_already_merged", "clusters_excluded")
        return [*super().as_rows(), *({"metric": name, "value": getattr(self, name)} for name in extra)]


@dataclass(frozen=True)
class MergeDryRun:
    """What a merge would do, cluster by cluster; nothing was written."""

    sweep_id: int
    clusters: int
    would_merge: int
    would_refuse: int
    already_merged: int
    would_exclude: int
    companies_merged: int
    fields_filled: int
    score_rows_moved: int
    dead_jobs_closed: int
    rows: list[dict[str, Any]] = field(default_factory=list)


@flow(
    name="merge-companies",
    task_runner=ThreadPoolTaskRunner(max_workers=4),  # type: ignore[arg-type]
    validate_parameters=True,
    **BULK_ACTION_HOOKS,
)
def merge_companies(
    sweep_id: int | None = None,
    cluster_ids: list[int] | None = None,
    exclude_cluster_ids: list[int] | None = None,
    database: str = "default",
    created_by: str = "prefect",
    bulk_action_id: int | None = None,
    failure_threshold: float = 0.5,
    progress_every: int = 5,
    takeover: bool = False,
    dry_run: bool = False,
) -> MergeSummary | MergeDryRun | BulkActionSummary | DryRunReport | State[Any]:
    """Merge the duplicate clusters of a dedup sweep: each winner keeps its id and gets its empty fields filled,
    each loser becomes ``merged`` into it; every change is history of kind ``merge``.

    Args:
        sweep_id: the ``dedup_sweep`` bulk action whose clusters to merge.
        cluster_ids: merge only these clusters of the sweep (after review); default: every ``proposed`` cluster.
        exclude_cluster_ids: clusters to leave out, marked ``excluded`` ("excluded by <created_by>").
        database: name of the company-database block.
        created_by: who asked, recorded on the bulk action and on the clusters excluded.
        bulk_action_id: resume this merge (after a crash or cancellation).
        failure_threshold: share of failed clusters above which the action ends ``failed``.
        progress_every: write progress to the database every this many batches.
        takeover: with ``bulk_action_id``, take the action over from a flow run whose process is gone.
        dry_run: report what would merge and what would be refused (and why); write nothing.
    """
    selection = None
    excluded = 0
    if bulk_action_id is None:
        if sweep_id is None:
            raise InputError("say which sweep's clusters to merge: sweep_id=<the dedup_sweep bulk action>")
        for name, ids in (("cluster_ids", cluster_ids), ("exclude_cluster_ids", exclude_cluster_ids)):
            if ids is not None and len(ids) > MAX_EXPLICIT_IDS:
                raise InputError(f"{name} lists {len(ids):,} clusters; at most {MAX_EXPLICIT_IDS:,}")
        db = load_database(database)
        with db.read_session() as session:
            choice = choose_clusters(session, sweep_id, cluster_ids, exclude_cluster_ids)
        if dry_run:
            return _dry_run(database, choice)
        _mark_review(database, choice, created_by)
        excluded = len(choice.exclude)
        if not choice.winners:
            message = f"sweep {sweep_id} has no cluster to merge (every one is merged, refused or excluded)"
            get_run_logger().warning("%s; no bulk action was created", message)
            return Completed(message=message)
        selection = selection_of(choice.winners, None)  # the legacy path: bounded by max_companies, not 10,000
    result = run_bulk_action(
        BulkActionRequest(
            action=MERGE_ACTION,
            selection=selection,
            provider=DEFAULT_PROVIDER,
            database=database,
            created_by=created_by,
            bulk_action_id=bulk_action_id,
            failure_threshold=failure_threshold,
            progress_every=progress_every,
            max_companies=DEFAULT_MAX_COMPANIES,
            takeover=takeover,
            options={"sweep_id": sweep_id},
        )
    )
    if isinstance(result, BulkActionSummary):
        return _report(result, database, excluded=excluded)
    return result


def _mark_review(database: str, choice: ClusterChoice, created_by: str) -> None:
    """The reviewer's decisions, before the merge starts: exclusions, and named clusters taken back in."""
    logger = get_run_logger()
    with load_database(database).session() as session:
        set_cluster_status(session, choice.exclude, ClusterStatus.EXCLUDED, f"excluded by {created_by}")
        set_cluster_status(session, choice.reinstate, ClusterStatus.PROPOSED, None)
    if choice.exclude:
        logger.info("excluded %d clusters of sweep %d: %s", len(choice.exclude), choice.sweep_id, choice.exclude)
    if choice.not_excludable:
        logger.warning(
            "clusters %s are merged already and cannot be excluded: roll their merge back instead",
            choice.not_excludable,
        )


def _report(summary: BulkActionSummary, database: str, *, excluded: int) -> MergeSummary:
    """The clusters artifact (merged, refused with the reason, already merged) and the merge's summary."""
    with load_database(database).read_session() as session:
        record = session.get(BulkAction, summary.bulk_action_id)
        sweep_id = int(((record.parameters or {}).get("options") or {}).get("sweep_id") or 0) if record else 0
        outcomes = merge_outcomes(session, summary.bulk_action_id, sweep_id)
    counted = Counter(o.result for o in outcomes)
    losers = sum((o.size or 1) - 1 for o in outcomes if o.result == "merged")
    _publish(summary.bulk_action_id, sweep_id, outcomes, counted)
    return summary.extended(
        MergeSummary,
        sweep_id=sweep_id,
        clusters_merged=counted["merged"],
        clusters_refused=counted["refused"],
        clusters_already_merged=counted["already merged"],
        clusters_excluded=excluded + counted["excluded"],
        companies_merged=losers,
    )


def _publish(merge_id: int, sweep_id: int, outcomes: list[ClusterOutcome], counted: Counter[str]) -> None:
    table = [
        {"cluster": o.cluster_id, "winner": o.winner_id, "members": o.size, "result": o.result, "detail": o.detail}
        for o in outcomes[:ARTIFACT_ROWS]
    ]
    counts = ", ".join(f"{n} {what}" for what, n in sorted(counted.items()))
    create_table_artifact(
        table,
        key=artifact_key(MERGE_ACTION, merge_id, "clusters"),
        description=f"merge {merge_id} of sweep {sweep_id}: {counts or 'no clusters'}",
    )
    logger = get_run_logger()
    logger.info("merge %d of sweep %d: %s", merge_id, sweep_id, counts or "no clusters")
    for o in outcomes:
        if o.result == "refused":
            logger.warning("cluster %s (winner %d) %s", o.cluster_id, o.winner_id, o.detail)


def _dry_run(database: str, choice: ClusterChoice) -> MergeDryRun:
    """Plan every chosen cluster as the merge would, write nothing, and report it (table artifact and log)."""
    with load_database(database).read_session() as session:
        plans = plan_merges(session, choice.sweep_id, choice.winners, as_proposed=choice.reinstate)
    ordered = [plans[w] for w in choice.winners]
    counted = Counter(p.verdict for p in ordered)
    merging = [p for p in ordered if p.verdict is Verdict.MERGE]
    report = MergeDryRun(
        sweep_id=choice.sweep_id,
        clusters=len(ordered),
        would_merge=counted[Verdict.MERGE],
        would_refuse=counted[Verdict.REFUSE],
        already_merged=counted[Verdict.ALREADY_MERGED],
        would_exclude=len(choice.exclude),
        companies_merged=sum(len(p.losers) for p in merging),
        fields_filled=sum(len(p.fills) for p in merging),
        score_rows_moved=sum(len(p.score_moves) for p in merging),
        dead_jobs_closed=sum(len(p.job_closes) for p in merging),
        rows=[_dry_row(p) for p in ordered[:ARTIFACT_ROWS]],
    )
    create_table_artifact(
        report.rows,
        key=f"merge-companies-sweep-{choice.sweep_id}-dry-run",
        description=f"dry run of a merge of sweep {choice.sweep_id}: {report.would_merge} clusters would merge, "
        f"{report.would_refuse} would be refused, {report.would_exclude} excluded; nothing written",
    )
    get_run_logger().info(
        "dry run: merging sweep %d would merge %d clusters (%d companies into their winners, %d fields filled, "
        "%d score rows moved, %d dead jobs closed), refuse %d, skip %d merged already, exclude %d; nothing written",
        choice.sweep_id,
        report.would_merge,
        report.companies_merged,
        report.fields_filled,
        report.score_rows_moved,
        report.dead_jobs_closed,
        report.would_refuse,
        report.already_merged,
        report.would_exclude,
    )
    return report


def _dry_row(plan: MergePlan) -> dict[str, Any]:
    would = {
        Verdict.MERGE: "merge",
        Verdict.REFUSE: "refuse",
        Verdict.ALREADY_MERGED: "already merged",
        Verdict.EXCLUDED: "excluded",
        Verdict.NOT_FOUND: "not found",
    }[plan.verdict]
    return {"cluster": plan.cluster_id, "winner": plan.winner_id, "would": would, "detail": plan.describe()}


if __name__ == "__main__":
    merge_companies()
