"""The bulk-action engine every action flow runs on.

A new action resolves its selection inside the database into its outcome rows and cuts them into batches of
position ranges (``core.batching``; one batch is one checkpointed ``process_batch`` task run covering the
provider block's ``calls_per_batch`` calls).  A rerun (``bulk_action_id``) reopens the record and rebuilds the
same batches, so completed ones come back from their checkpoints without a provider call.  The engine keeps no
more batches of a provider in flight than that provider's limit, whose ``tag:<provider>`` slots it holds itself
for the whole action (``flows.provider_slots``); a missing limit stops the run instead of running unlimited.

With ``shards > 1`` the flow run becomes a parent: it submits one child flow run per shard through the work
pool (``flows.shards``), each child takes its own slots from the same global limit, and the parent reports the
overall progress and the combined end.  ``dry_run`` resolves the selection and reports it with the estimated
provider calls, cost and duration (``flows.dry_run``), writing nothing.

Progress goes to the database every ``progress_every`` batches and at the end, and to a live progress artifact,
both from a monitor thread (``flows.progress``) so the loop never waits on them; a summary table artifact closes
the run.  Status goes pending → running → completed, or failed when the share of failed companies passes
``failure_threshold``, or cancelled when the flow run is cancelled.
"""

from __future__ import annotations

import time
from typing import Any
from uuid import UUID

from prefect import get_run_logger
from prefect.artifacts import create_progress_artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import State
from prefect.runtime import flow_run as current_flow_run
from prefect.states import Cancelled, Completed

from blocks.database import CompanyDatabase
from blocks.loading import load_database, load_provider_block
from blocks.spend import load_spend_policy
from core.catalog import get_action
from core.errors import EmptyCompanyListError, EmptySelectionError, InputError
from core.pricing import format_usd
from core.schema import BulkAction, BulkActionStatus
from core.shards import set_shard_status, shard_rows, store_shard_progress
from core.spend import account_state, action_account, action_spend, check_budget_usd, release_abandoned
from core.store import outcome_counts, set_pause_request, set_status
from flows.action_end import artifact_key, finish_action
from flows.batch_loop import BatchJob, Tally, map_batches
from flows.bulk_record import OpenedAction, as_started, open_action, open_shard, read_flow_run
from flows.bulk_types import BulkActionFailedError, BulkActionRequest, BulkActionSummary, DryRunReport
from flows.cost_checks import check_spend_preconditions
from flows.dry_run import dry_run
from flows.engine_end import action_events, conclude, summarize
from flows.engine_hooks import BULK_ACTION_HOOKS
from flows.progress import ProgressMonitor
from flows.provider_slots import ProviderSlots, provider_limit
from flows.queue_routing import route_to_priority_queue
from flows.reclassify_llm import run_rounds, uses_message_batches
from flows.shards import combined_shard_end, run_parent
from tasks.circuit_guard import describe_circuit, guarding

MAX_SHARDS = 64

__all__ = [  # BULK_ACTION_HOOKS lives in flows.engine_hooks; re-exported: every action flow imports it from here
    "BULK_ACTION_HOOKS",
    "BulkActionFailedError",
    "BulkActionRequest",
    "BulkActionSummary",
    "DryRunReport",
    "run_bulk_action",
]


def run_bulk_action(request: BulkActionRequest) -> BulkActionSummary | DryRunReport | State[Any]:
    """Run one bulk action (or one shard of it) inside the current flow run; see the module docstring."""
    if (moved := route_to_priority_queue(request)) is not None:
        return moved  # this run sat in another priority's work queue: a new run in the right one took over
    started = time.perf_counter()
    spec = get_action(request.action)
    _validate(request)
    db = load_database(request.database)
    if request.dry_run:
        return dry_run(db, request)
    request = as_started(db, request, spec)
    block = load_provider_block(request.provider)
    tag = str(block.concurrency_tag)
    check_spend_preconditions(
        _paid_providers(request),
        load_spend_policy().price_book(),
        request.budget_usd,
        allow_unpriced=request.allow_unpriced,
    )
    flow_run_id = str(current_flow_run.id)
    if request.shards > 1 and request.shard_index is None:
        with get_client(sync_client=True) as client:
            limit = provider_limit(client, tag)  # a missing limit stops the parent before anything is written
        try:
            opened = open_action(db, request, spec, flow_run_id, tag, _calls_per_batch(block), limit)
        except EmptySelectionError as error:
            return _nothing_selected(error)
        with db.read_session() as session:
            counts = outcome_counts(session, opened.bulk_action_id)
        signals = action_events(request, db, opened.bulk_action_id, flow_run_id, counts)
        signals.emit_started(counts.total, counts.processed)
        return run_parent(request, db, opened, flow_run_id, tag, started, signals)
    slots = ProviderSlots(tag, flow_run_id, db=db)  # fails fast when the provider has no limit
    try:
        if request.shard_index is not None:
            opened = open_shard(db, request, spec, flow_run_id, tag)
        else:
            try:
                opened = open_action(db, request, spec, flow_run_id, tag, _calls_per_batch(block), slots.limit)
            except EmptySelectionError as error:
                return _nothing_selected(error)
        if uses_message_batches(request):
            return _run_rounds(request, db, opened.bulk_action_id, flow_run_id, started)
        return _run_batches(request, db, opened, slots, flow_run_id, started)
    finally:
        slots.release_all()


def _run_rounds(
    request: BulkActionRequest, db: CompanyDatabase, bulk_action_id: int, flow_run_id: str, started: float
) -> BulkActionSummary | State[Any]:
    """An action on Message Batches (``flows.reclassify_llm``): one round, then its end or its hand-over."""
    with db.read_session() as session:
        counts = outcome_counts(session, bulk_action_id)
    signals = action_events(request, db, bulk_action_id, flow_run_id, counts)
    signals.emit_started(counts.total, counts.processed)
    with guarding(db):  # the Anthropic calls pass the provider's circuit breaker
        end = run_rounds(request, db, bulk_action_id, flow_run_id)
    signals.progress(end.counts, 0.0, final=True)
    if end.continuation is not None:
        return Completed(message=f"bulk action {bulk_action_id} waits: {end.reason}")
    cancelled = end.reason if end.status is BulkActionStatus.CANCELLED else None
    final = finish_action(
        db, bulk_action_id, failure_threshold=request.failure_threshold, cancelled=cancelled, paused=end.reason
    )
    return conclude(
        request, db, bulk_action_id, final.status, final.reason, final.counts, end.tally, end.batches, started, signals
    )


def _paid_providers(request: BulkActionRequest) -> list[str]:
    """Every provider block the action may call, the first one first (a tiered scoring's tiers)."""
    tiers = request.options.get("tiers")
    return [str(t) for t in tiers] if tiers else [request.provider]


def _calls_per_batch(block: Any) -> int:
    return max(1, int(getattr(block, "calls_per_batch", 1)))


def _flow_runs_of(session: Any, bulk_action_id: int) -> list[str]:
    """Every flow run that has driven the action (before this one starts its batches, none is calling)."""
    record = session.get(BulkAction, bulk_action_id)
    return [str(run) for run in ((record.parameters or {}).get("flow_runs") or [])] if record is not None else []


def _validate(request: BulkActionRequest) -> None:
    if not 0.0 <= request.failure_threshold <= 1.0:
        raise InputError("failure_threshold must be between 0 and 1")
    if request.progress_every < 1:
        raise InputError("progress_every must be at least 1")
    if not 1 <= request.shards <= MAX_SHARDS:
        raise InputError(f"shards must be between 1 and {MAX_SHARDS}")
    if request.shard_index is not None and not 0 <= request.shard_index < request.shards:
        raise InputError(f"shard_index must be between 0 and {request.shards - 1} (shards={request.shards})")
    if request.selection is None and request.bulk_action_id is None:
        raise EmptyCompanyListError()
    if request.shards > 1 and uses_message_batches(request):
        raise InputError("reclassify mode=llm runs on Message Batches, which need no shards: omit shards")
    check_budget_usd(request.budget_usd)


def _nothing_selected(error: EmptySelectionError) -> State[Any]:
    """An empty selection is reported and the run ends cleanly: nothing to do is not a failure."""
    get_run_logger().warning("%s; no bulk action was created", error)
    return Completed(message=str(error))


def _run_batches(
    request: BulkActionRequest,
    db: CompanyDatabase,
    opened: OpenedAction,
    slots: ProviderSlots,
    flow_run_id: str,
    started: float,
) -> BulkActionSummary | State[Any]:
    """Run the action's batches (or one shard's) in this flow run."""
    logger = get_run_logger()
    plan, bulk_action_id, shard = opened.plan, opened.bulk_action_id, request.shard_index
    if shard is None:
        batch_indices: range = range(plan.batches)
        positions: tuple[int, int] | None = None
        what = f"Bulk action {bulk_action_id}"
    else:
        batch_indices = plan.shard_batches(shard, request.shards)
        positions = plan.shard_positions(shard, request.shards)
        what = f"Bulk action {bulk_action_id}, shard {shard} of {request.shards}"
    with db.session() as session:
        if shard is None:
            record = session.get(BulkAction, bulk_action_id)
            resumed = record is not None and record.status is BulkActionStatus.PAUSED
            set_status(session, bulk_action_id, BulkActionStatus.RUNNING)
            set_pause_request(session, bulk_action_id, False)  # running again is what a resume asked for
            given_back = release_abandoned(session, bulk_action_id, _flow_runs_of(session, bulk_action_id))
        else:
            resumed = False
            set_shard_status(session, bulk_action_id, shard, BulkActionStatus.RUNNING)
            given_back = release_abandoned(session, bulk_action_id, [flow_run_id])
        counts_at_start = outcome_counts(session, bulk_action_id, positions)  # then kept current from the reports
    if given_back:
        logger.warning("gave back %s reserved by calls of earlier runs that never settled", format_usd(given_back))
    suffix = "progress" if shard is None else f"shard-{shard}-progress"
    description = f"{what}: {request.action} over {counts_at_start.total} companies"
    progress_id: UUID = create_progress_artifact(  # type: ignore[assignment]  # sync call returns the UUID
        0.0, key=artifact_key(request.action, bulk_action_id, suffix), description=description
    )
    with db.read_session() as session:
        spent_at_start = action_spend(session, bulk_action_id)
        account = account_state(session, action_account(bulk_action_id))
    signals = action_events(request, db, bulk_action_id, flow_run_id, counts_at_start) if shard is None else None
    if signals is not None:
        if resumed:
            signals.emit_resumed(request.budget_usd)
        signals.emit_started(counts_at_start.total, counts_at_start.processed)
    monitor = ProgressMonitor(
        db=db,
        bulk_action_id=bulk_action_id,
        flow_run_id=flow_run_id,
        artifact_id=progress_id,
        total_batches=len(batch_indices),
        counts=counts_at_start,
        logger=logger,
        cancel_check_seconds=request.cancel_check_seconds,
        write_counts=None
        if shard is None
        else (lambda session, counts: store_shard_progress(session, bulk_action_id, shard, counts)),
        description=description,
        spent_nanousd=spent_at_start,
        budget_nanousd=account.limit_nanousd if account is not None else None,
        on_progress=None if signals is None else signals.on_monitor,
        status_line=lambda: describe_circuit(db, slots.tag),
    )
    job = BatchJob(
        action=request.action,
        bulk_action_id=bulk_action_id,
        database=request.database,
        provider=request.provider,
        options=request.options,
        plan=plan,
        progress_every=request.progress_every,
        cancel_check_seconds=request.cancel_check_seconds,
    )
    wanted = len(batch_indices)
    if shard is not None:
        # The shards share the provider's limit: a shard that took every free slot would leave its siblings
        # waiting for its tail (the shards then run one after another), or for its leases to expire if it died.
        wanted = min(wanted, -(-slots.limit // request.shards))
    with monitor:
        window = slots.acquire(wanted, should_stop=monitor.check_cancelled, bulk_action_id=bulk_action_id)
        logger.info(
            "%s: %s over %d companies in %d batches of %d calls of %d; provider %s (%d of %d %r slots held)",
            what,
            request.action,
            counts_at_start.total,
            len(batch_indices),
            plan.calls_per_batch,
            plan.call_size,
            request.provider,
            window,
            slots.limit,
            slots.tag,
        )
        tally = map_batches(job, batch_indices, db, slots, monitor, window)
    cancelled = f"flow run cancelled after {tally.finished} batches" if monitor.cancel_requested else None
    paused = tally.budget_stop or ("paused on request" if monitor.pause_requested else None)
    if shard is not None:
        return _end_shard(
            request, db, opened, positions or (0, 0), tally, cancelled, paused, len(batch_indices), started
        )
    end = finish_action(
        db,
        bulk_action_id,
        failure_threshold=request.failure_threshold,
        cancelled=cancelled,
        paused=paused,
        progress_counts=monitor.counts,
    )
    return conclude(
        request, db, bulk_action_id, end.status, end.reason, end.counts, tally, len(batch_indices), started, signals
    )


def _end_shard(
    request: BulkActionRequest,
    db: CompanyDatabase,
    opened: OpenedAction,
    positions: tuple[int, int],
    tally: Tally,
    cancelled: str | None,
    paused: str | None,
    batches: int,
    started: float,
) -> BulkActionSummary | State[Any]:
    """A shard records its own end; the parent decides the action's (or this shard does, if it was the last
    one and the parent is gone)."""
    assert request.shard_index is not None
    bulk_action_id = opened.bulk_action_id
    status = BulkActionStatus.CANCELLED if cancelled else BulkActionStatus.COMPLETED
    with db.session() as session:
        counts = outcome_counts(session, bulk_action_id, positions)
        if paused and not cancelled and counts.processed < counts.total:
            status, cancelled = BulkActionStatus.PAUSED, None
        set_shard_status(
            session,
            bulk_action_id,
            request.shard_index,
            status,
            reason=cancelled or (paused if status is BulkActionStatus.PAUSED else None),
            counts=counts,
            provider_calls=tally.provider_calls,
            batches_from_checkpoint=tally.from_checkpoint,
        )
    _finish_if_orphaned(request, db, bulk_action_id)
    summary = summarize(request, db, bulk_action_id, status, counts, tally, batches, started)
    if cancelled:
        return Cancelled(message=f"shard {request.shard_index} of bulk action {bulk_action_id}: {cancelled}")
    return summary


def _finish_if_orphaned(request: BulkActionRequest, db: CompanyDatabase, bulk_action_id: int) -> None:
    """A shard rerun on its own after its parent died ends the action when it is the last shard to finish."""
    with db.read_session() as session:
        record = session.get(BulkAction, bulk_action_id)
        rows = shard_rows(session, bulk_action_id)
        parent_id = record.flow_run_id if record is not None else None
        if record is None or record.status.finished or not all(r.status.finished for r in rows):
            return
    with get_client(sync_client=True) as client:
        parent = read_flow_run(client, parent_id) if parent_id else None
    if parent is not None and parent.state is not None and not parent.state.is_final():
        return  # the parent is waiting and will end the action itself
    cancelled, failed = combined_shard_end(rows)
    finish_action(db, bulk_action_id, failure_threshold=request.failure_threshold, cancelled=cancelled, failed=failed)
