"""The engine's loop: keep a window of batches in flight, collect their reports, hand back slots.

The loop only submits, collects reports and renews or gives back provider slots: progress, artifacts and the
cancellation check happen on the monitor's thread (``flows.progress``), so a finished batch is replaced at
once.  Batches are position ranges (``core.batching``): nothing here ever holds the action's company ids.
"""

from __future__ import annotations

import queue
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from prefect import get_run_logger
from prefect._internal.result_records import ResultRecord  # what a finished state carries in memory
from prefect.client.schemas.objects import State
from prefect.futures import PrefectFuture

from blocks.database import CompanyDatabase
from core.batching import BatchPlan
from core.errors import ActionStopError
from core.schema import OutcomeStatus
from core.store import CompanyResult, batch_members, record_results
from flows.progress import ProgressMonitor
from flows.provider_slots import ProviderSlots
from tasks.batch import BatchReport, failure, process_batch


@dataclass(frozen=True)
class BatchJob:
    """What every batch of one run shares: the action, where it writes and which provider it calls."""

    action: str
    bulk_action_id: int
    database: str
    provider: str
    options: dict[str, Any]
    plan: BatchPlan
    progress_every: int
    cancel_check_seconds: float


@dataclass
class Tally:
    """What the loop learned from the batches' reports."""

    finished: int = 0
    from_checkpoint: int = 0
    provider_calls: int = 0
    invalid_input: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    #: why a batch stopped because a budget could be passed (the action then pauses), or None
    budget_stop: str | None = None
    #: the class of the stop (``BudgetReachedError``, ``ProviderOutageError``), for the action's events
    stop_class: str | None = None


def map_batches(
    job: BatchJob,
    batch_indices: Sequence[int],
    db: CompanyDatabase,
    slots: ProviderSlots,
    monitor: ProgressMonitor,
    window: int,
) -> Tally:
    """Keep ``window`` batches in flight until all are done or the run is cancelled."""
    logger = get_run_logger()
    done: queue.Queue[PrefectFuture[BatchReport]] = queue.Queue()
    tally = Tally()
    next_batch = in_flight = 0
    batch_of: dict[UUID, int] = {}
    while next_batch < len(batch_indices) or in_flight:
        while in_flight < window and next_batch < len(batch_indices) and not _stopping(monitor, tally):
            index = batch_indices[next_batch]
            future = process_batch.submit(
                job.action,
                job.bulk_action_id,
                index,
                job.plan.positions(index),
                job.plan.call_size,
                job.database,
                job.provider,
                job.options,
            )
            future.add_done_callback(done.put)
            batch_of[future.task_run_id] = index
            in_flight += 1
            next_batch += 1
        if in_flight == 0:
            break
        slots.renew_if_due()  # leases outlive any gap between checks: renewed every minute, held for five
        try:
            future = done.get(timeout=job.cancel_check_seconds)
        except queue.Empty:
            continue
        in_flight -= 1
        tally.finished += 1
        future.wait()
        state = future.state
        index = batch_of.pop(future.task_run_id)
        if state.is_completed():
            report = _report_of(state)
            cached = state.name == "Cached"
            tally.from_checkpoint += cached
            tally.provider_calls += 0 if cached else report.provider_calls
            tally.invalid_input += 0 if cached else report.invalid_input
            tally.errors.update(report.errors)
            if not cached:  # a checkpointed batch's outcomes (and spend) were already counted at the start
                monitor.count(report.count_changes)
                monitor.add_spend(report.spent_nanousd)
        elif (stop := _budget_stop(state)) is not None:
            # not a failure: the batch recorded what it paid for and left the rest pending; no new batch starts
            logger.warning("batch %d stopped: %s", index, stop)
            tally.budget_stop = tally.budget_stop or str(stop)
            tally.stop_class = tally.stop_class or type(stop).__name__
            monitor.count(stop.count_changes)
        else:
            logger.error("batch %d ended %s: %s", index, state.type.value, state.message)
            errors, changes = _record_crashed_batch(db, job, state, index)
            tally.errors.update(errors)
            monitor.count(changes)
        if _stopping(monitor, tally):
            next_batch = len(batch_indices)  # in-flight batches finish; none starts
        slots.shrink_to(in_flight + len(batch_indices) - next_batch)  # unfinished batches: never fewer slots
        if next_batch < len(batch_indices):
            # a higher-priority action waiting on the provider gets this slot instead of our next batch
            if slots.rebalance() and not len(slots):
                logger.info("gave the last %r slot to a higher-priority action; waiting for one", slots.tag)
                if not slots.acquire(slots.wanted, should_stop=monitor.check_cancelled):
                    next_batch = len(batch_indices)  # cancelled or paused while waiting: nothing in flight
        window = max(len(slots), 1)
        if tally.finished % job.progress_every == 0:
            monitor.report(tally.finished)
    monitor.report(tally.finished)
    return tally


def _stopping(monitor: ProgressMonitor, tally: Tally) -> bool:
    """No new batch starts once the run is cancelled, asked to pause, or a budget stopped a batch."""
    return monitor.cancel_requested or monitor.pause_requested or tally.budget_stop is not None


def _budget_stop(state: State[Any]) -> ActionStopError | None:
    """The budget refusal a failed batch ended with, if that is why it ended."""
    try:
        state.result()
    except ActionStopError as stop:
        return stop
    except BaseException:  # noqa: BLE001 - any other end is a crash, handled by the caller
        return None
    return None


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
    db: CompanyDatabase, job: BatchJob, state: State[Any], batch_index: int
) -> tuple[Counter[str], dict[str, int]]:
    """A batch task that failed as a whole (our infrastructure, after retries): its pending companies become
    dead jobs; what it had finished keeps its outcome.

    Returns the error classes counted and how the outcome counts changed (empty if the database failed too).
    """
    try:
        state.result()
        error: BaseException = RuntimeError(f"batch ended {state.type.value}: {state.message}")
    except BaseException as exc:  # noqa: BLE001 - the task's exception is what we record
        error = exc
    changes: dict[str, int] = {}
    pending: list[int] = []
    try:
        with db.session() as session:
            members = batch_members(session, job.bulk_action_id, *job.plan.positions(batch_index))
            pending = [cid for cid, status in members if status is OutcomeStatus.PENDING]
            results: list[CompanyResult] = [failure(cid, error, attempts=1) for cid in pending]
            changes = record_results(session, job.bulk_action_id, job.action, results)
    except Exception:  # noqa: BLE001 - the database may be what failed; the outcome rows stay 'pending'
        get_run_logger().exception("could not record the failure of a batch of bulk action %d", job.bulk_action_id)
    return Counter({type(error).__name__: len(pending)}), changes
