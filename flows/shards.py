"""One bulk action across several workers: the parent flow run of a sharded action.

The parent has created the record and resolved the selection; it cuts the batches into ``shards`` contiguous
ranges (``core.batching``) and submits one child flow run per shard through the work pool, with
``run_deployment`` of the same action's deployment, so any worker of the pool can take a shard.  Each child
claims its shard row, holds its own provider slots from the same global limit (the limit holds across all of
them) and has its own checkpoints (its batches are disjoint from the others').

The parent holds no slots and calls no provider: it waits on the shard rows (so a shard rerun on its own after
its worker died is seen), marks a shard whose flow run ended without recording its end, passes a cancellation
on to the children, writes the overall progress, and ends the action with the combined status once every
shard has ended.  A parent rerun (``bulk_action_id``) adopts children that are still running and resubmits
only the shards that ended unfinished.
"""

from __future__ import annotations

import time
from typing import Any
from uuid import UUID

from prefect import get_run_logger
from prefect.artifacts import create_progress_artifact, create_table_artifact, update_progress_artifact
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.objects import FlowRun, State, StateType
from prefect.deployments import run_deployment
from prefect.runtime import deployment as current_deployment
from prefect.runtime import flow_run as current_flow_run
from prefect.states import Cancelled, Cancelling

from blocks.database import CompanyDatabase
from core.schema import BulkActionShard, BulkActionStatus
from core.shards import ensure_shards, set_shard_status, shard_rows
from core.slot_priority import queue_for
from core.store import outcome_counts, set_status, store_progress
from flows.action_end import artifact_key, finish_action
from flows.action_events import ActionEvents
from flows.bulk_record import OpenedAction, read_flow_run
from flows.bulk_types import BulkActionFailedError, BulkActionRequest, BulkActionSummary
from flows.progress import is_cancelling
from flows.queue_routing import request_priority

#: how often the parent writes the overall progress (a recount of the action's outcome rows)
PROGRESS_SECONDS = 5.0


def shard_deployment() -> str:
    """The deployment the shards run on: the one this flow run came from, else the flow's own default one."""
    flow_name = current_flow_run.flow_name
    name = current_deployment.name
    return f"{flow_name}/{name or flow_name}"


def paused_shards(rows: list[BulkActionShard]) -> str | None:
    """Why the action pauses when shards stopped on a budget or a pause request (None when none did)."""
    paused = [r for r in rows if r.status is BulkActionStatus.PAUSED]
    if not paused:
        return None
    return "; ".join(f"shard {r.shard_index}: {r.status_reason or 'paused'}" for r in paused)


def combined_shard_end(rows: list[BulkActionShard]) -> tuple[str | None, str | None]:
    """(cancelled reason, failed reason) of an action from its shards' ends; (None, None) when all completed."""
    failed = [r for r in rows if r.status is BulkActionStatus.FAILED]
    cancelled = [r for r in rows if r.status is BulkActionStatus.CANCELLED]
    if failed:
        return None, "; ".join(
            f"shard {r.shard_index} failed: {r.status_reason or 'no reason recorded'}" for r in failed
        )
    if cancelled:
        return f"shard(s) {', '.join(str(r.shard_index) for r in cancelled)} cancelled", None
    return None, None


def run_parent(
    request: BulkActionRequest,
    db: CompanyDatabase,
    opened: OpenedAction,
    flow_run_id: str,
    tag: str,
    started: float,
    signals: ActionEvents | None = None,
) -> BulkActionSummary | State[Any]:
    logger = get_run_logger()
    bulk_action_id, plan = opened.bulk_action_id, opened.plan
    with db.session() as session:
        set_status(session, bulk_action_id, BulkActionStatus.RUNNING)
        rows = ensure_shards(session, bulk_action_id, request.shards)
        session.expunge_all()
    deployment = shard_deployment()
    progress_id: UUID = create_progress_artifact(  # type: ignore[assignment]  # sync call returns the UUID
        0.0,
        key=artifact_key(request.action, bulk_action_id, "progress"),
        description=f"Bulk action {bulk_action_id}: {request.action} over {plan.total} companies in {request.shards} "
        "shards",
    )
    logger.info(
        "bulk action %d: %s over %d companies in %d batches, %d shards on deployment %r",
        bulk_action_id,
        request.action,
        plan.total,
        plan.batches,
        request.shards,
        deployment,
    )
    cancelled: str | None = None
    with get_client(sync_client=True) as client:
        for row in rows:
            _start_shard(client, db, request, row, deployment, flow_run_id)
        next_progress = 0.0
        while True:
            with db.read_session() as session:
                rows = shard_rows(session, bulk_action_id)
                session.expunge_all()
            _reconcile(client, db, rows)
            if all(r.status.finished or r.status is BulkActionStatus.PAUSED for r in rows):
                break
            if cancelled is None and is_cancelling(flow_run_id):
                cancelled = "flow run cancelled"
                _cancel_children(client, rows)
            if time.monotonic() >= next_progress:
                next_progress = time.monotonic() + PROGRESS_SECONDS
                _write_progress(db, bulk_action_id, progress_id, plan.total, signals)
            time.sleep(request.cancel_check_seconds)  # polling the children's rows; their runs live elsewhere
    _write_progress(db, bulk_action_id, progress_id, plan.total, signals, final=True)
    shard_cancelled, shard_failed = combined_shard_end(rows)
    end = finish_action(
        db,
        bulk_action_id,
        failure_threshold=request.failure_threshold,
        cancelled=cancelled or shard_cancelled,
        failed=shard_failed,
        paused=paused_shards(rows),
    )
    summary = BulkActionSummary(
        bulk_action_id=bulk_action_id,
        action=request.action,
        status=end.status.value,
        total=end.counts.total,
        succeeded=end.counts.succeeded,
        skipped=end.counts.skipped,
        failed=end.counts.failed,
        batches=plan.batches,
        batches_from_checkpoint=sum(r.batches_from_checkpoint for r in rows),
        provider_calls=sum(r.provider_calls for r in rows),
        seconds=time.perf_counter() - started,
        errors={},
        shards=request.shards,
    )
    shard_table = [
        {
            "shard": r.shard_index,
            "status": r.status.value,
            "flow run": r.flow_run_id,
            "companies": r.total,
            "succeeded": r.succeeded,
            "skipped": r.skipped,
            "failed": r.failed,
            "provider calls": r.provider_calls,
            "reason": r.status_reason or "",
        }
        for r in rows
    ]
    create_table_artifact(
        [*summary.as_rows(), *({"metric": f"shard {s['shard']}", "value": str(s)} for s in shard_table)],
        key=artifact_key(request.action, bulk_action_id, "summary"),
        description=f"Bulk action {bulk_action_id} ({request.action}): {end.status.value}",
    )
    logger.info("bulk action %d %s over %d shards: %s", bulk_action_id, end.status.value, len(rows), end.counts)
    if signals is not None:
        signals.ended(end.status, end.reason, end.counts, summary, budget_stop=False)
    if end.status is BulkActionStatus.CANCELLED:
        return Cancelled(message=f"bulk action {bulk_action_id} cancelled: {end.reason}")
    if end.status is BulkActionStatus.FAILED:
        raise BulkActionFailedError(f"bulk action {bulk_action_id} failed: {end.reason}")
    return summary


def _start_shard(
    client: SyncPrefectClient,
    db: CompanyDatabase,
    request: BulkActionRequest,
    row: BulkActionShard,
    deployment: str,
    flow_run_id: str,
) -> None:
    """Submit the shard's child flow run, unless it completed already or its current run is still going."""
    if row.status is BulkActionStatus.COMPLETED:
        return
    previous = read_flow_run(client, row.flow_run_id) if row.flow_run_id else None
    if previous is not None and previous.state is not None and not previous.state.is_final():
        get_run_logger().info("shard %d: adopting its running flow run %s", row.shard_index, previous.id)
        return
    child: FlowRun = run_deployment(  # type: ignore[assignment]  # sync call returns the FlowRun
        deployment,
        parameters={
            "bulk_action_id": row.bulk_action_id,
            "shard_index": row.shard_index,
            "shards": request.shards,
            "database": request.database,
            "failure_threshold": request.failure_threshold,
            "progress_every": request.progress_every,
        },
        timeout=0,
        as_subflow=True,
        tags=[f"bulk-action-{row.bulk_action_id}", f"shard-{row.shard_index}"],
        # a retried parent (same flow run) must not submit the same shard twice
        idempotency_key=f"{flow_run_id}:shard-{row.shard_index}:after-{row.flow_run_id or 'none'}",
        flow_run_name=f"bulk-action-{row.bulk_action_id}-shard-{row.shard_index}-of-{request.shards}",
        work_queue_name=queue_for(request_priority(request)),  # the action's recorded priority
    )
    with db.session() as session:
        set_shard_status(
            session, row.bulk_action_id, row.shard_index, BulkActionStatus.PENDING, flow_run_id=str(child.id)
        )
    get_run_logger().info("shard %d submitted as flow run %s", row.shard_index, child.id)


def _reconcile(client: SyncPrefectClient, db: CompanyDatabase, rows: list[BulkActionShard]) -> None:
    """A shard whose flow run ended without recording its end (its process failed before its hooks ran)."""
    for row in rows:
        if row.status.finished or not row.flow_run_id:
            continue
        run = read_flow_run(client, row.flow_run_id)
        state = run.state if run is not None else None
        if state is None or not state.is_final():
            continue
        with db.read_session() as session:  # the child may have written its end since the rows were read
            fresh = shard_rows(session, row.bulk_action_id)[row.shard_index]
            if fresh.status.finished or fresh.flow_run_id != row.flow_run_id:
                continue
        status = BulkActionStatus.CANCELLED if state.type is StateType.CANCELLED else BulkActionStatus.FAILED
        reason = f"flow run {row.flow_run_id} ended {state.type.value}: {state.message or ''}".strip()
        with db.session() as session:
            set_shard_status(session, row.bulk_action_id, row.shard_index, status, reason=reason)
        row.status, row.status_reason = status, reason


def _cancel_children(client: SyncPrefectClient, rows: list[BulkActionShard]) -> None:
    for row in rows:
        if row.flow_run_id and not row.status.finished:
            run = read_flow_run(client, row.flow_run_id)
            if run is not None and run.state is not None and not run.state.is_final():
                client.set_flow_run_state(run.id, Cancelling(message="the bulk action's parent was cancelled"))


def _write_progress(
    db: CompanyDatabase,
    bulk_action_id: int,
    progress_id: UUID,
    total: int,
    signals: ActionEvents | None = None,
    *,
    final: bool = False,
) -> None:
    with db.read_session() as session:
        counts = outcome_counts(session, bulk_action_id)
    with db.session() as session:
        store_progress(session, bulk_action_id, counts)
    update_progress_artifact(progress_id, 100.0 * counts.processed / max(total, 1))
    if signals is not None:
        signals.progress(counts, 0.0, final=final)
