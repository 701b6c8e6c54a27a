"""cleanup: the scheduled housekeeping of bulk actions, dead jobs and checkpoints.

1. Finished bulk actions (completed, failed, cancelled) past ``retention_days`` are deleted; their outcomes go
   with them, their dead jobs stay (``bulk_action_id`` set to NULL).  Pending, running and paused actions are
   never deleted.
2. Actions the database shows ``running`` whose flow run is over without completing (Crashed, Cancelled,
   Failed) or no longer exists are marked ``failed`` with the reason, so they can be seen and rerun by id.
3. Resolved and discarded dead jobs past ``dead_job_retention_days`` are deleted.
4. Checkpoints (persisted task results) older than ``retention_days`` are deleted, conservatively: only when no
   bulk action of this database is unfinished (pending, running, paused or waiting), since any may resume from them.
5. Budget reservations no call can settle anymore (their action is paused, ended or gone: a process died
   mid-call) are given back, so they stop holding a creator's or provider's monthly budget.
6. Prefect's own history: top-level flow runs that ended more than ``flow_run_retention_days`` ago are deleted
   through the API (their task runs go with them), except every flow run recorded on an unfinished bulk action
   of any company database on the server (``flows.flow_run_retention`` says why Prefect's flow-run vacuum is not
   used for this).

``dry_run`` reports all of it and changes nothing; a markdown artifact says what was (or would be) done.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import StateType
from prefect.exceptions import ObjectNotFound
from prefect.settings import PREFECT_RESULTS_LOCAL_STORAGE_PATH

from blocks.loading import load_database
from core.maintenance import (
    delete_bulk_actions,
    finished_bulk_actions_older_than,
    mark_failed,
    prune_resolved_dead_jobs,
    resolved_dead_jobs_older_than,
    stuck_running_actions,
    unfinished_count,
)
from core.pricing import format_usd
from core.spend import idle_reservations, release
from flows.flow_run_retention import company_database_names, delete_old_flow_runs


@dataclass
class CleanupReport:
    dry_run: bool
    deleted_bulk_actions: list[int] = field(default_factory=list)
    failed_stuck: dict[int, str] = field(default_factory=dict)
    pruned_dead_jobs: int = 0
    purged_results: int = 0
    results_skipped_reason: str | None = None
    released_reservations: int = 0
    released_nanousd: int = 0
    deleted_flow_runs: int = 0
    kept_flow_runs: int = 0
    flow_runs_skipped_reason: str | None = None

    def markdown(self) -> str:
        would = self.dry_run
        lines = [
            "# Cleanup" + (" (dry run: nothing changed)" if would else ""),
            "",
            "| what | count | detail |",
            "| --- | ---: | --- |",
            f"| bulk actions {'to delete' if would else 'deleted'} | {len(self.deleted_bulk_actions)} | "
            f"{', '.join(map(str, self.deleted_bulk_actions[:20]))} |",
            f"| stuck running actions {'to mark' if would else 'marked'} failed | {len(self.failed_stuck)} | "
            + "; ".join(f"{i}: {r}" for i, r in list(self.failed_stuck.items())[:20])
            + " |",
            f"| dead jobs {'to prune' if would else 'pruned'} | {self.pruned_dead_jobs} | |",
            f"| checkpoint files {'to purge' if would else 'purged'} | {self.purged_results} | "
            f"{self.results_skipped_reason or ''} |",
            f"| budget reservations {'to release' if would else 'released'} | {self.released_reservations} | "
            f"{format_usd(self.released_nanousd)} |",
            f"| Prefect flow runs {'to delete' if would else 'deleted'} | {self.deleted_flow_runs} | "
            f"{self.flow_runs_skipped_reason or f'{self.kept_flow_runs} old ones kept: bulk action unfinished'} |",
        ]
        return "\n".join(lines) + "\n"

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "deleted_bulk_actions": self.deleted_bulk_actions,
            "failed_stuck": self.failed_stuck,
            "pruned_dead_jobs": self.pruned_dead_jobs,
            "purged_results": self.purged_results,
            "results_skipped_reason": self.results_skipped_reason,
            "released_reservations": self.released_reservations,
            "deleted_flow_runs": self.deleted_flow_runs,
            "kept_flow_runs": self.kept_flow_runs,
            "flow_runs_skipped_reason": self.flow_runs_skipped_reason,
        }


def _dead_flow_run_reason(flow_run_id: str | None) -> str | None:
    """Why the flow run behind a ``running`` action is gone, or None while it may still be working."""
    if not flow_run_id:
        return "no flow run recorded"
    with get_client(sync_client=True) as client:
        try:
            flow_run = client.read_flow_run(UUID(flow_run_id))
        except (ObjectNotFound, ValueError):
            return f"flow run {flow_run_id} no longer exists"
    state = flow_run.state
    if state is None or not state.is_final() or state.type is StateType.COMPLETED:
        # a completed flow run with a running record is the engine's business (its hooks), not a crash
        return None
    kind = {StateType.CRASHED: "crashed", StateType.CANCELLED: "cancelled"}.get(state.type, state.type.value.lower())
    return f"flow run {flow_run_id} {kind}"


def _old_result_files(root: Path, retention_days: int, now: float) -> list[Path]:
    if not root.is_dir():
        return []
    cutoff = now - retention_days * 86400
    return [p for p in root.rglob("*") if p.is_file() and p.stat().st_mtime < cutoff]


@flow(name="cleanup", validate_parameters=True)
def cleanup(
    retention_days: int = 7,
    dead_job_retention_days: int = 30,
    dry_run: bool = False,
    database: str = "default",
    flow_run_retention_days: int | None = 30,
    protect_databases: list[str] | None = None,
) -> dict[str, Any]:
    """Delete what no one needs anymore and close actions whose flow run died.

    Checkpoint purging is deliberately conservative: result files carry no bulk action id we could match, so
    files older than ``retention_days`` are deleted only when no bulk action of ``database`` is pending,
    running or paused (checked after the stuck ones are closed); otherwise none are touched.  Actions of other
    databases sharing the result directory are not seen: run the cleanup against each database, and keep
    ``retention_days`` longer than any action may sit paused.

    Args:
        retention_days: finished bulk actions and checkpoint files older than this are deleted.
        dead_job_retention_days: resolved/discarded dead jobs closed longer ago than this are deleted.
        dry_run: report only.
        database: name of the company-database block.
        flow_run_retention_days: Prefect flow runs that ended longer ago than this are deleted, except those of
            unfinished bulk actions; None keeps them all.
        protect_databases: the company-database blocks whose unfinished actions' flow runs are kept; default:
            every company-database block on the server (a block that cannot be read stops the deletion).
    """
    logger = get_run_logger()
    now = datetime.now(UTC)
    report = CleanupReport(dry_run=dry_run)
    db = load_database(database)

    with db.session() as session:
        running = [(r.id, r.flow_run_id) for r in stuck_running_actions(session)]
    # Prefect is asked outside the database transaction, which must not be held across network calls.
    stuck = {i: reason for i, fr in running if (reason := _dead_flow_run_reason(fr)) is not None}
    report.failed_stuck = stuck

    with db.session() as session:
        report.deleted_bulk_actions = finished_bulk_actions_older_than(session, retention_days, now)
        if dry_run:
            report.pruned_dead_jobs = len(resolved_dead_jobs_older_than(session, dead_job_retention_days, now))
        else:
            for bulk_action_id, reason in stuck.items():
                mark_failed(session, bulk_action_id, reason, now=now)
            delete_bulk_actions(session, report.deleted_bulk_actions)
            report.pruned_dead_jobs = prune_resolved_dead_jobs(session, dead_job_retention_days, now)
        idle = idle_reservations(session)
        report.released_reservations = len(idle)
        if not dry_run:
            report.released_nanousd = release(session, idle)
        unfinished = unfinished_count(session) - (len(stuck) if dry_run else 0)

    root = Path(PREFECT_RESULTS_LOCAL_STORAGE_PATH.value()).expanduser()
    if unfinished > 0:
        report.results_skipped_reason = f"kept: {unfinished} bulk action(s) pending/running/paused may need them"
    else:
        old = _old_result_files(root, retention_days, time.time())
        report.purged_results = len(old)
        if not dry_run:
            for path in old:
                path.unlink(missing_ok=True)

    if flow_run_retention_days is not None:
        with get_client(sync_client=True) as client:
            databases = protect_databases if protect_databases is not None else company_database_names(client)
            retention = delete_old_flow_runs(
                client, now=now, retention_days=flow_run_retention_days, databases=databases, dry_run=dry_run
            )
        report.deleted_flow_runs = len(retention.deleted)
        report.kept_flow_runs = len(retention.kept)
        report.flow_runs_skipped_reason = retention.skipped_reason

    create_markdown_artifact(
        report.markdown(), key="cleanup", description="cleanup" + (" (dry run)" if dry_run else "")
    )
    logger.info("cleanup%s: %s", " (dry run)" if dry_run else "", report.as_dict())
    return report.as_dict()


if __name__ == "__main__":
    cleanup()
