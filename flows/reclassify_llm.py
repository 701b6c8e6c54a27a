"""LLM reclassify's rounds: submit, poll and stage, post-process, then wait without holding a worker.

A flow run drives one *round*: it settles any POST a crash left unrecorded, submits the companies not yet in a
sub-batch, and polls every ``poll_seconds`` (staging what ended, applying what is staged) for at most
``wait_seconds``.  When every batch has ended and been applied, the action ends as any other does.  When batches
are still processing at the deadline, the flow run hands the action over (status ``waiting``, the reason says
how many batches and when the next look is) to a continuation run of its own deployment scheduled
``recheck_seconds`` later, and completes: Message Batches can take 24 hours, and a worker is not held for that.
A flow run that is not deployed (called from Python) has no worker to free and polls until the end.

Cancelling the flow run cancels the action's batches at the provider; a pause request or a budget reached stops
submitting, and the action pauses once the batches in flight are applied (``flows.pausing``), as the engine's
batches do.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any
from uuid import UUID

from prefect import get_run_logger
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment
from prefect.runtime import deployment as current_deployment

from blocks.database import CompanyDatabase
from blocks.loading import load_provider_block
from core.errors import ActionStopError, InputError
from core.message_batches import hand_over, in_flight_ids, open_batches, set_round_status, unsubmitted
from core.reclassify_llm import PROVIDER, LLMOptions
from core.schema import BulkActionStatus, utcnow
from core.slot_priority import queue_for
from core.store import OutcomeCounts, pause_requested, write_progress
from flows.action_end import artifact_key
from flows.batch_loop import Tally
from flows.bulk_types import BulkActionRequest
from flows.progress import is_cancelling
from flows.queue_routing import request_priority
from tasks.message_batches import MessageBatchJob, PhaseReport
from tasks.metering import Meter

DEFAULT_POLL_SECONDS = 30.0
DEFAULT_WAIT_SECONDS = 300.0
DEFAULT_RECHECK_SECONDS = 600.0


def uses_message_batches(request: BulkActionRequest) -> bool:
    return request.action == "reclassify" and request.options.get("mode") == "llm"


@dataclass(frozen=True)
class RoundEnd:
    """How a round ended: the action's end (``status``), or handed over (``continuation`` names the next run)."""

    status: BulkActionStatus | None
    reason: str | None
    counts: OutcomeCounts
    tally: Tally
    batches: int
    continuation: str | None = None


def message_batches_block(provider: str) -> Any:
    """The provider block LLM mode runs on: an ``anthropic-llm`` block (it has the Message Batches client)."""
    block = load_provider_block(provider)
    if not hasattr(block, "get_batches_client"):
        raise InputError(
            f"reclassify mode=llm runs on Anthropic Message Batches: provider {provider!r} is not an "
            "anthropic-llm block"
        )
    return block


def run_rounds(request: BulkActionRequest, db: CompanyDatabase, bulk_action_id: int, flow_run_id: str) -> RoundEnd:
    """Drive the action's batches for one round (see the module docstring)."""
    logger = get_run_logger()
    block = message_batches_block(request.provider)
    options = request.options
    job = MessageBatchJob(
        database=db,
        bulk_action_id=bulk_action_id,
        client=block.get_batches_client(),
        options=LLMOptions.of(options, block.model),
        meter=Meter.for_batch(db, bulk_action_id, "reclassify"),
        force=bool(options.get("force", False)),
        resolve_after_seconds=2 * float(block.timeout_seconds),
    )
    job.meter.prices.check_llm(PROVIDER, job.options.model)  # an unpriced model is refused before any POST
    poll_seconds = float(options.get("poll_seconds", DEFAULT_POLL_SECONDS))
    wait_seconds = float(options.get("wait_seconds", DEFAULT_WAIT_SECONDS))
    deployment_id = current_deployment.id
    deadline = time.monotonic() + wait_seconds
    with db.session() as session:
        set_round_status(session, bulk_action_id, BulkActionStatus.RUNNING, None)
        counts = write_progress(session, bulk_action_id)
    progress_id = create_progress_artifact(
        0.0,
        key=artifact_key("reclassify", bulk_action_id, "progress"),
        description=f"Bulk action {bulk_action_id}: reclassify (LLM, Message Batches) over {counts.total} companies",
    )
    tally, stop, totals, submitted = Tally(), None, PhaseReport(), 0
    if deployment_id is None:
        logger.info("not run from a deployment: polling in this process until every batch has ended")
    while True:
        if is_cancelling(flow_run_id):
            return _cancelled(db, job, bulk_action_id, tally, submitted)
        _add(totals, job.resolve_unrecorded(), logger)
        if stop is None:
            with db.read_session() as session:
                if pause_requested(session, bulk_action_id):
                    stop = "paused on request"
        if stop is None:
            try:
                submitting = job.submit(should_stop=lambda: is_cancelling(flow_run_id))
                submitted += submitting.batches
                _add(totals, submitting, logger)
            except ActionStopError as reached:
                stop = str(reached)
                tally.stop_class = type(reached).__name__
                logger.warning("no more sub-batches: %s", reached)
        _add(totals, job.poll_and_stage(), logger)
        _add(totals, job.apply_staged(), logger)
        with db.session() as session:
            counts = write_progress(session, bulk_action_id)
            still_open = open_batches(session, bulk_action_id)
            left = bool(unsubmitted(session, bulk_action_id, 1))
        update_progress_artifact(progress_id, 100.0 * counts.processed / max(counts.total, 1))  # type: ignore[arg-type]
        tally.provider_calls, tally.invalid_input = totals.requests, totals.invalid_input
        if still_open == 0 and (not left or stop is not None):
            _log_round(logger, bulk_action_id, totals, submitted)
            return RoundEnd(None, stop, counts, tally, submitted)
        if deployment_id is not None and time.monotonic() >= deadline:
            _log_round(logger, bulk_action_id, totals, submitted)
            end = _hand_over(request, db, bulk_action_id, flow_run_id, UUID(str(deployment_id)), still_open, tally)
            return replace(end, batches=submitted)
        time.sleep(poll_seconds)  # the provider's pace, not ours: nothing to wait on but its clock


def _log_round(logger: Any, bulk_action_id: int, totals: PhaseReport, submitted: int) -> None:
    """What this round did; ``duplicates`` are results of a company already applied (an orphan batch's)."""
    logger.info(
        "bulk action %d, this round: %d requests in %d sub-batches submitted, %d results staged, %d applied, "
        "%d duplicate results dropped",
        bulk_action_id,
        totals.requests,
        submitted,
        totals.staged,
        totals.applied,
        totals.duplicates,
    )


def _add(totals: PhaseReport, report: PhaseReport, logger: Any) -> None:
    totals.requests += report.requests
    totals.batches += report.batches
    totals.staged += report.staged
    totals.applied += report.applied
    totals.duplicates += report.duplicates
    totals.invalid_input += report.invalid_input
    for note in report.notes:
        logger.warning(note)


def _cancelled(
    db: CompanyDatabase, job: MessageBatchJob, bulk_action_id: int, tally: Tally, submitted: int
) -> RoundEnd:
    """Stop paying: cancel the batches still processing (what already ran is billed and stays staged)."""
    with db.read_session() as session:
        batch_ids = in_flight_ids(session, bulk_action_id)
    for batch_id in batch_ids:
        job.client.cancel(batch_id)
    with db.session() as session:
        counts = write_progress(session, bulk_action_id)
    reason = f"flow run cancelled; {len(batch_ids)} message batches canceled at the provider"
    return RoundEnd(BulkActionStatus.CANCELLED, reason, counts, tally, submitted)


def _hand_over(
    request: BulkActionRequest,
    db: CompanyDatabase,
    bulk_action_id: int,
    flow_run_id: str,
    deployment_id: UUID,
    still_open: int,
    tally: Tally,
) -> RoundEnd:
    """Schedule the next round on this deployment and let go of the action until it starts."""
    recheck = float(request.options.get("recheck_seconds", DEFAULT_RECHECK_SECONDS))
    at = utcnow() + timedelta(seconds=recheck)
    parameters = {
        "bulk_action_id": bulk_action_id,
        "mode": "llm",
        "provider": request.provider,
        "database": request.database,
        "created_by": request.created_by,
    }
    follow: FlowRun = run_deployment(  # type: ignore[assignment]  # sync context: the FlowRun, not a coroutine
        deployment_id,
        parameters=parameters,
        scheduled_time=at,
        timeout=0,
        as_subflow=False,
        idempotency_key=f"reclassify-llm-continue-{flow_run_id}",
        work_queue_name=queue_for(request_priority(request)),
        flow_run_name=f"reclassify-{bulk_action_id}-round",
    )
    reason = (
        f"{still_open} message batches processing at the provider; flow run {follow.id} looks again at "
        f"{at:%Y-%m-%d %H:%M:%S} UTC"
    )
    with db.session() as session:
        hand_over(session, bulk_action_id, reason)
        counts = write_progress(session, bulk_action_id)
    get_run_logger().info("bulk action %d waits: %s", bulk_action_id, reason)
    return RoundEnd(None, reason, counts, tally, 0, continuation=str(follow.id))
