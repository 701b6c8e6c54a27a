"""The bulk-action engine every action flow runs on.

It validates the request, creates the bulk action record once (a retried flow run, or a rerun given
``bulk_action_id``, reuses it), splits the companies into batches of the action's size and maps one
``process_batch`` task per batch, named after its provider.  It keeps no more batches of a provider in flight
than that provider's limit, whose ``tag:<provider>`` slots it holds itself for the whole action (see
``flows.provider_slots``); a missing limit stops the run instead of silently running unlimited.  Task runs carry
no tags on purpose: Prefect 3.9.1's task engine asks the server for ``tag:`` slots for every tag of every task
run, limit or not, and that round trip (0.5 s a task under load, measured) was most of a batch's cost.

Progress goes to the database every ``progress_every`` batches and at the end, and to a live progress artifact,
both from a monitor thread (``flows.progress``) so the loop never waits on them; a summary table artifact closes
the run.  Status goes pending → running → completed, or failed when the share
of failed companies passes ``failure_threshold``, or cancelled when the flow run is cancelled.
"""

from __future__ import annotations

import queue
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from uuid import UUID

from prefect import Flow, get_run_logger
from prefect._internal.result_records import ResultRecord  # what a finished state carries in memory
from prefect.artifacts import create_progress_artifact, create_table_artifact
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterId,
    TaskRunFilter,
    TaskRunFilterState,
    TaskRunFilterStateType,
)
from prefect.client.schemas.objects import FlowRun, State, StateType
from prefect.exceptions import ObjectNotFound
from prefect.futures import PrefectFuture
from prefect.runtime import flow_run as current_flow_run
from prefect.states import Cancelled, Crashed

from blocks.database import CompanyDatabase
from blocks.loading import load_database, load_provider_block
from core.catalog import DEFAULT_MAX_COMPANIES, ActionSpec, get_action
from core.errors import InputError
from core.schema import BulkAction, BulkActionStatus
from core.store import (
    CompanyResult,
    bulk_action_company_ids,
    create_bulk_action,
    error_summary,
    existing_company_ids,
    find_bulk_action_by_flow_run,
    outcome_counts,
    record_results,
    set_status,
    write_progress,
)
from core.validation import validate_request
from flows.progress import ProgressMonitor
from flows.provider_slots import ProviderSlots, release_slots_of_dead_run
from tasks.batch import BatchReport, failure, process_batch


class BulkActionFailedError(RuntimeError):
    """Raised at the end of a bulk action whose failures passed its threshold (the flow run ends Failed)."""


@dataclass(frozen=True)
class BulkActionRequest:
    action: str
    company_ids: Sequence[int]
    provider: str
    database: str = "default"
    created_by: str = "unknown"
    priority: int = 0
    bulk_action_id: int | None = None
    parent_id: int | None = None
    max_companies: int = DEFAULT_MAX_COMPANIES
    progress_every: int = 5
    failure_threshold: float = 0.5
    cancel_check_seconds: float = 2.0
    takeover: bool = False
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BulkActionSummary:
    bulk_action_id: int
    action: str
    status: str
    total: int
    succeeded: int
    skipped: int
    failed: int
    batches: int
    batches_from_checkpoint: int
    provider_calls: int
    seconds: float
    errors: dict[str, int]

    def as_rows(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = [
            {"metric": name, "value": getattr(self, name)}
            for name in (
                "bulk_action_id",
                "action",
                "status",
                "total",
                "succeeded",
                "skipped",
                "failed",
                "batches",
                "batches_from_checkpoint",
                "provider_calls",
            )
        ]
        rows.append({"metric": "seconds", "value": round(self.seconds, 2)})
        rows.extend({"metric": f"dead jobs: {cls}", "value": n} for cls, n in sorted(self.errors.items()))
        return rows


def _as_started(db: CompanyDatabase, request: BulkActionRequest, spec: ActionSpec) -> BulkActionRequest:
    """A rerun of a bulk action runs on the provider and options it started with.

    Checkpoints are keyed on them, so resuming on anything else would silently redo (and pay for) every batch
    that had completed.  A rerun that leaves ``provider`` at the action's default gets the stored one, and one
    that names another provider is refused with the way out; options (whose defaults the flows always pass)
    are the stored ones, with a warning when the rerun asked for others.
    """
    if request.bulk_action_id is None:
        return request
    with db.read_session() as session:
        record = session.get(BulkAction, request.bulk_action_id)
        stored = dict(record.parameters or {}) if record is not None else {}
    if record is None or "provider" not in stored:
        return request  # _open_record reports a missing record
    provider, options = str(stored["provider"]), dict(stored.get("options") or {})
    if request.provider not in (provider, spec.default_provider):
        raise InputError(
            f"bulk action {request.bulk_action_id} runs on provider {provider!r}, not {request.provider!r}: "
            "omit provider to resume it, or start a new bulk action on the other provider"
        )
    if request.options != options:
        get_run_logger().warning(
            "bulk action %d resumes with the options it started with, %s (not %s)",
            request.bulk_action_id,
            options,
            request.options,
        )
    return replace(request, provider=provider, options=options)


def _open_record(db: CompanyDatabase, request: BulkActionRequest, flow_run_id: str, tag: str) -> tuple[int, list[int]]:
    """Find or create the bulk action record and return it with its companies in selection order."""
    with db.session() as session:
        record = find_bulk_action_by_flow_run(session, flow_run_id)
        if record is None and request.bulk_action_id is not None:
            record = session.get(BulkAction, request.bulk_action_id)
            if record is None:
                raise InputError(f"bulk action {request.bulk_action_id} does not exist")
            if record.action != request.action:
                raise InputError(f"bulk action {record.id} is a {record.action!r} action, not {request.action!r}")
            if record.flow_run_id and record.flow_run_id != flow_run_id:
                _take_over_from(record, flow_run_id, takeover=request.takeover, tag=tag)
            history = list((record.parameters or {}).get("flow_runs", []))
            record.parameters = {**(record.parameters or {}), "flow_runs": [*history, flow_run_id]}
            record.flow_run_id = flow_run_id
        if record is not None:
            ids = bulk_action_company_ids(session, record.id)
            if request.company_ids and list(request.company_ids) != ids:
                raise InputError(f"company_ids differ from bulk action {record.id}'s selection; omit them to resume it")
            return record.id, ids
        ids = list(request.company_ids)
        validate_request(
            request.action,
            ids,
            max_companies=request.max_companies,
            existing_ids=lambda chunk: existing_company_ids(session, chunk),
        )
        record = create_bulk_action(
            session,
            action=request.action,
            company_ids=ids,
            created_by=request.created_by,
            priority=request.priority,
            flow_run_id=flow_run_id,
            parent_id=request.parent_id,
            parameters={
                "provider": request.provider,
                "database": request.database,
                "options": request.options,
                "flow_runs": [flow_run_id],
            },
        )
        return record.id, ids


def _take_over_from(record: BulkAction, flow_run_id: str, *, takeover: bool, tag: str) -> None:
    """Two flow runs must never drive one bulk action at once.

    If the previous flow run still shows as running, its process may be alive (refuse) or dead without the
    server knowing yet (a killed worker): ``takeover=True`` says the caller knows it is dead.  The old run and
    its unfinished task runs are then marked Crashed and the provider slots they held are given back, so the
    UI tells the truth and the rerun is not throttled by leases nobody will ever release.
    """
    assert record.flow_run_id is not None
    with get_client(sync_client=True) as client:
        try:
            owner: FlowRun | None = client.read_flow_run(UUID(record.flow_run_id))
        except (ObjectNotFound, ValueError):
            owner = None
        if owner is None or owner.state is None or owner.state.is_final():
            return
        if not takeover:
            raise InputError(
                f"bulk action {record.id} is still owned by flow run {owner.id} ({owner.state.type.value}); "
                "cancel that run, or pass takeover=true if its process is gone"
            )
        message = f"taken over by flow run {flow_run_id} (bulk action {record.id})"
        client.set_flow_run_state(owner.id, Crashed(message=message), force=True)
        _crash_unfinished_tasks(client, owner.id, message)
        release_slots_of_dead_run(client, tag, owner.id)
        get_run_logger().warning(
            "took bulk action %d over from flow run %s and freed its %r slots", record.id, owner.id, tag
        )


def _crash_unfinished_tasks(client: SyncPrefectClient, dead_flow_run_id: UUID, message: str) -> None:
    """The dead run's unfinished task runs are crashed too, so the UI shows what really happened."""
    unfinished = client.read_task_runs(
        flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[dead_flow_run_id])),
        task_run_filter=TaskRunFilter(
            state=TaskRunFilterState(
                type=TaskRunFilterStateType(any_=[StateType.RUNNING, StateType.PENDING, StateType.SCHEDULED])
            )
        ),
    )
    for task_run in unfinished:
        client.set_task_run_state(task_run.id, Crashed(message=message), force=True)


def _artifact_key(action: str, bulk_action_id: int, what: str) -> str:
    return f"{action.replace('_', '-')}-{bulk_action_id}-{what}"


def run_bulk_action(request: BulkActionRequest) -> BulkActionSummary | State[Any]:
    """Run one bulk action inside the current flow run; see the module docstring."""
    started = time.perf_counter()
    spec = get_action(request.action)
    if not 0.0 <= request.failure_threshold <= 1.0:
        raise InputError("failure_threshold must be between 0 and 1")
    if request.progress_every < 1:
        raise InputError("progress_every must be at least 1")
    db = load_database(request.database)
    request = _as_started(db, request, spec)
    tag = str(load_provider_block(request.provider).concurrency_tag)
    flow_run_id = str(current_flow_run.id)
    slots = ProviderSlots(tag, flow_run_id)  # fails fast when the provider has no limit
    try:
        return _run(request, spec, db, tag, slots, flow_run_id, started)
    finally:
        slots.release_all()


def _run(
    request: BulkActionRequest,
    spec: ActionSpec,
    db: CompanyDatabase,
    tag: str,
    slots: ProviderSlots,
    flow_run_id: str,
    started: float,
) -> BulkActionSummary | State[Any]:
    logger = get_run_logger()
    bulk_action_id, company_ids = _open_record(db, request, flow_run_id, tag)
    with db.session() as session:
        set_status(session, bulk_action_id, BulkActionStatus.RUNNING)
        counts_at_start = outcome_counts(session, bulk_action_id)  # then kept current from the batches' reports
    batches = [tuple(company_ids[i : i + spec.batch_size]) for i in range(0, len(company_ids), spec.batch_size)]
    progress_id: UUID = create_progress_artifact(  # type: ignore[assignment]  # sync call returns the UUID
        0.0,
        key=_artifact_key(request.action, bulk_action_id, "progress"),
        description=f"Bulk action {bulk_action_id}: {request.action} over {len(company_ids)} companies",
    )
    monitor = ProgressMonitor(
        db=db,
        bulk_action_id=bulk_action_id,
        flow_run_id=flow_run_id,
        artifact_id=progress_id,
        total_batches=len(batches),
        counts=counts_at_start,
        logger=logger,
        cancel_check_seconds=request.cancel_check_seconds,
    )
    with monitor:
        window = slots.acquire(len(batches), should_stop=monitor.check_cancelled)
        logger.info(
            "bulk action %d: %s over %d companies in %d batches of %d; provider %s (%d of %d %r slots held)",
            bulk_action_id,
            request.action,
            len(company_ids),
            len(batches),
            spec.batch_size,
            request.provider,
            window,
            slots.limit,
            tag,
        )
        tally = _map_batches(request, bulk_action_id, batches, db, slots, monitor, window)
    cancelled = monitor.cancel_requested
    with db.session() as session:
        counts = write_progress(session, bulk_action_id)
        if monitor.counts != counts:  # the batches' reported changes should add up to the rows exactly
            logger.warning(
                "bulk action %d: progress counted %s, the outcome rows say %s", bulk_action_id, monitor.counts, counts
            )
        summary_errors = error_summary(session, bulk_action_id)
        if cancelled:
            status, reason = BulkActionStatus.CANCELLED, f"flow run cancelled after {tally.finished} batches"
        elif counts.total and counts.failed / counts.total > request.failure_threshold:
            status = BulkActionStatus.FAILED
            reason = (
                f"{counts.failed} of {counts.total} companies failed, "
                f"more than the threshold of {request.failure_threshold:.0%}"
            )
        else:
            status, reason = BulkActionStatus.COMPLETED, None
        set_status(session, bulk_action_id, status, reason=reason, error_summary=summary_errors)
    summary = BulkActionSummary(
        bulk_action_id=bulk_action_id,
        action=request.action,
        status=status.value,
        total=counts.total,
        succeeded=counts.succeeded,
        skipped=counts.skipped,
        failed=counts.failed,
        batches=len(batches),
        batches_from_checkpoint=tally.from_checkpoint,
        provider_calls=tally.provider_calls,
        seconds=time.perf_counter() - started,
        errors=dict(tally.errors),
    )
    create_table_artifact(
        summary.as_rows(),
        key=_artifact_key(request.action, bulk_action_id, "summary"),
        description=f"Bulk action {bulk_action_id} ({request.action}): {status.value}",
    )
    logger.info(
        "bulk action %d %s: %d succeeded, %d skipped, %d failed; %d/%d batches from checkpoints; %.1f s",
        bulk_action_id,
        status.value,
        summary.succeeded,
        summary.skipped,
        summary.failed,
        summary.batches_from_checkpoint,
        len(batches),
        summary.seconds,
    )
    if status is BulkActionStatus.CANCELLED:
        return Cancelled(message=f"bulk action {bulk_action_id} cancelled: {reason}")
    if status is BulkActionStatus.FAILED:
        raise BulkActionFailedError(f"bulk action {bulk_action_id} failed: {reason}")
    return summary


@dataclass
class _Tally:
    """What the loop learned from the batches' reports."""

    finished: int = 0
    from_checkpoint: int = 0
    provider_calls: int = 0
    errors: Counter[str] = field(default_factory=Counter)


def _map_batches(
    request: BulkActionRequest,
    bulk_action_id: int,
    batches: list[tuple[int, ...]],
    db: CompanyDatabase,
    slots: ProviderSlots,
    monitor: ProgressMonitor,
    window: int,
) -> _Tally:
    """Keep ``window`` batches in flight until all are done or the run is cancelled.

    The loop only submits, collects reports and renews or gives back slots: progress, artifacts and the
    cancellation check happen on the monitor's thread, so a finished batch is replaced at once.
    """
    logger = get_run_logger()
    done: queue.Queue[PrefectFuture[BatchReport]] = queue.Queue()
    tally = _Tally()
    next_batch = in_flight = 0
    batch_of: dict[UUID, tuple[int, ...]] = {}
    while next_batch < len(batches) or in_flight:
        while in_flight < window and next_batch < len(batches) and not monitor.cancel_requested:
            future = process_batch.submit(
                request.action,
                bulk_action_id,
                next_batch,
                batches[next_batch],
                request.database,
                request.provider,
                request.options,
            )
            future.add_done_callback(done.put)
            batch_of[future.task_run_id] = batches[next_batch]
            in_flight += 1
            next_batch += 1
        if in_flight == 0:
            break
        slots.renew_if_due()  # leases outlive any gap between checks: renewed every minute, held for five
        try:
            future = done.get(timeout=request.cancel_check_seconds)
        except queue.Empty:
            continue
        in_flight -= 1
        tally.finished += 1
        future.wait()
        state = future.state
        if state.is_completed():
            report = _report_of(state)
            cached = state.name == "Cached"
            tally.from_checkpoint += cached
            tally.provider_calls += 0 if cached else report.provider_calls
            tally.errors.update(report.errors)
            if not cached:  # a checkpointed batch's outcomes were already in the counts at the start
                monitor.count(report.count_changes)
        else:
            logger.error("batch %s ended %s: %s", future.task_run_id, state.type.value, state.message)
            errors, changes = _record_crashed_batch(
                db, request.action, bulk_action_id, state, batch_of[future.task_run_id]
            )
            tally.errors.update(errors)
            monitor.count(changes)
        del batch_of[future.task_run_id]
        slots.shrink_to(in_flight + len(batches) - next_batch)  # unfinished batches: never fewer slots
        window = max(len(slots), 1)
        if tally.finished % request.progress_every == 0:
            monitor.report(tally.finished)
    monitor.report(tally.finished)
    return tally


def _report_of(state: State[Any]) -> BatchReport:
    """The batch's report, read from the state's in-memory result record when it has one.

    ``State.result()`` always hops to Prefect's run-sync event loop thread and back; under a busy GIL that hop
    costs milliseconds per batch on the engine's loop, and a completed or cached task run in this process
    already carries its result record.
    """
    data = state.data
    report = data.result if isinstance(data, ResultRecord) else state.result()
    if not isinstance(report, BatchReport):
        raise TypeError(f"a process-batch task returned {type(report).__name__}, not a BatchReport")
    return report


def _record_crashed_batch(
    db: CompanyDatabase, action: str, bulk_action_id: int, state: State[Any], ids: tuple[int, ...]
) -> tuple[Counter[str], dict[str, int]]:
    """A batch task that failed as a whole (our infrastructure, after retries): its companies become dead jobs.

    Returns the error classes counted and how the outcome counts changed (empty if the write failed too).
    """
    try:
        state.result()
        error: BaseException = RuntimeError(f"batch ended {state.type.value}: {state.message}")
    except BaseException as exc:  # noqa: BLE001 - the task's exception is what we record
        error = exc
    results: list[CompanyResult] = [failure(cid, error, attempts=1) for cid in ids]
    changes: dict[str, int] = {}
    try:
        with db.session() as session:
            changes = record_results(session, bulk_action_id, action, results)
    except Exception:  # noqa: BLE001 - the database may be what failed; the outcome rows stay 'pending'
        get_run_logger().exception("could not record the failure of a batch of bulk action %d", bulk_action_id)
    return Counter({type(error).__name__: len(ids)}), changes


# --- hooks: the record follows the flow run even when the engine is not running anymore ---------------------


def _finish_from_hook(flow_run: FlowRun, status: BulkActionStatus, reason: str) -> None:
    database = str((flow_run.parameters or {}).get("database") or "default")
    db = load_database(database)
    with db.session() as session:
        record = find_bulk_action_by_flow_run(session, str(flow_run.id))
        if record is None or record.status.finished:
            return
        write_progress(session, record.id)
        set_status(session, record.id, status, reason=reason, error_summary=error_summary(session, record.id))


def mark_cancelled(flow: Flow[..., Any], flow_run: FlowRun, state: State[Any]) -> None:
    _finish_from_hook(flow_run, BulkActionStatus.CANCELLED, f"flow run cancelled: {state.message or ''}".strip())


def mark_crashed(flow: Flow[..., Any], flow_run: FlowRun, state: State[Any]) -> None:
    _finish_from_hook(flow_run, BulkActionStatus.FAILED, f"flow run crashed: {state.message or ''}".strip())


def mark_failed(flow: Flow[..., Any], flow_run: FlowRun, state: State[Any]) -> None:
    _finish_from_hook(flow_run, BulkActionStatus.FAILED, f"flow run failed: {state.message or ''}".strip())


BULK_ACTION_HOOKS: dict[str, Any] = {
    "on_cancellation": [mark_cancelled],
    "on_crashed": [mark_crashed],
    "on_failure": [mark_failed],
}
