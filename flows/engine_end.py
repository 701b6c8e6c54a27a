"""How a bulk action's flow run ends: its summary artifact, its log lines, its events and its final state.

Also the run's event emitter (``action_events``), built when the run starts with the action's duration estimate.
"""

from __future__ import annotations

import time
from typing import Any

from prefect import get_run_logger
from prefect.artifacts import create_table_artifact
from prefect.client.schemas.objects import State
from prefect.states import Cancelled

from blocks.database import CompanyDatabase
from blocks.operations import load_operations_policy
from core.pricing import format_usd, nano_to_usd, usd_to_nano
from core.schema import BulkAction, BulkActionStatus
from core.spend import account_state, action_account, action_spend
from core.store import OutcomeCounts
from flows.action_end import artifact_key
from flows.action_events import ActionEvents
from flows.batch_loop import Tally
from flows.bulk_types import BulkActionFailedError, BulkActionRequest, BulkActionSummary
from flows.dry_run import estimated_seconds
from flows.pausing import suspend_paused_action


def summarize(
    request: BulkActionRequest,
    db: CompanyDatabase,
    bulk_action_id: int,
    status: BulkActionStatus,
    counts: OutcomeCounts,
    tally: Tally,
    batches: int,
    started: float,
    reason: str | None = None,
) -> BulkActionSummary:
    with db.read_session() as session:
        spent = action_spend(session, bulk_action_id)
        account = account_state(session, action_account(bulk_action_id))
        limit = account.limit_nanousd if account is not None else None
    return BulkActionSummary(
        spend_usd=nano_to_usd(spent),
        budget_usd=None if limit is None else nano_to_usd(limit),
        status_reason=reason,
        bulk_action_id=bulk_action_id,
        action=request.action,
        status=status.value,
        total=counts.total,
        succeeded=counts.succeeded,
        skipped=counts.skipped,
        failed=counts.failed,
        batches=batches,
        batches_from_checkpoint=tally.from_checkpoint,
        provider_calls=tally.provider_calls,
        seconds=time.perf_counter() - started,
        errors=dict(tally.errors),
        invalid_input=tally.invalid_input,
        shards=request.shards,
    )


def conclude(
    request: BulkActionRequest,
    db: CompanyDatabase,
    bulk_action_id: int,
    status: BulkActionStatus,
    reason: str | None,
    counts: OutcomeCounts,
    tally: Tally,
    batches: int,
    started: float,
    signals: ActionEvents | None = None,
) -> BulkActionSummary | State[Any]:
    """Publish the summary, log the end, emit it, and turn it into the flow run's end state."""
    summary = summarize(request, db, bulk_action_id, status, counts, tally, batches, started, reason)
    if signals is not None:
        signals.ended(status, reason, counts, summary, budget_stop=tally.stop_class == "BudgetReachedError")
    create_table_artifact(
        summary.as_rows(),
        key=artifact_key(request.action, bulk_action_id, "summary"),
        description=f"Bulk action {bulk_action_id} ({request.action}): {status.value}",
    )
    get_run_logger().info(
        "bulk action %d %s: %d succeeded, %d skipped, %d failed (%d invalid input); %d/%d batches from "
        "checkpoints; %.1f s",
        bulk_action_id,
        status.value,
        summary.succeeded,
        summary.skipped,
        summary.failed,
        summary.invalid_input,
        summary.batches_from_checkpoint,
        batches,
        summary.seconds,
    )
    get_run_logger().info(
        "bulk action %d spent %s%s",
        bulk_action_id,
        format_usd(usd_to_nano(summary.spend_usd)),
        "" if summary.budget_usd is None else f" of a {format_usd(usd_to_nano(summary.budget_usd))} budget",
    )
    if status is BulkActionStatus.CANCELLED:
        return Cancelled(message=f"bulk action {bulk_action_id} cancelled: {reason}")
    if status is BulkActionStatus.FAILED:
        raise BulkActionFailedError(f"bulk action {bulk_action_id} failed: {reason}")
    if status is BulkActionStatus.PAUSED:
        return suspend_paused_action(db, bulk_action_id, reason or "paused")
    return summary


def action_events(
    request: BulkActionRequest, db: CompanyDatabase, bulk_action_id: int, flow_run_id: str, counts: OutcomeCounts
) -> ActionEvents:
    """The run's event emitter, with the action's duration estimate (made once, when the action is new, and kept
    on the record) scaled to the share of companies this run starts with."""
    with db.session() as session:
        record = session.get(BulkAction, bulk_action_id)
        assert record is not None
        parameters = dict(record.parameters or {})
        if "estimated_seconds" not in parameters:
            parameters["estimated_seconds"] = estimated_seconds(db, request, counts.total)
            record.parameters = parameters
        created_by, priority = record.created_by, record.priority
    estimate = parameters.get("estimated_seconds")
    pending = counts.total - counts.processed
    return ActionEvents(
        bulk_action_id=bulk_action_id,
        action=request.action,
        priority=priority,
        created_by=created_by,
        flow_run_id=flow_run_id,
        thresholds=load_operations_policy().alerts,
        estimated_seconds=None if not estimate or not counts.total else float(estimate) * pending / counts.total,
    )
