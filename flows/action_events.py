"""The Prefect events of one bulk action's flow run (names and payloads: ``core.events``).

The engine tells an ``ActionEvents`` what happens (started, each progress write, the end, a pause) and it
decides what to emit: progress at most once every ``progress_event_seconds`` (and always at the end), and the
two threshold crossings the alert automations fire on, each once per flow run:

- **failure ratio**: failed ÷ processed passes ``failure_ratio`` once at least ``failure_min_processed``
  companies are processed;
- **slower than its estimate**: this run's elapsed time passes ``slow_factor`` × the estimate for the work it
  started with (the action's estimated duration, from the dry-run estimator, scaled by the share of companies
  still pending when this run started, so a resumed action is judged on what it had left).

Stalls need no emitter: the "stalled" automation is a proactive trigger that fires when a started or progress
event is not followed by another within ``stall_minutes``.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from blocks.operations import AlertThresholds
from core import events
from core.pricing import nano_to_usd
from core.schema import BulkActionStatus
from core.store import OutcomeCounts
from flows.bulk_types import BulkActionSummary
from tasks.events import emit_action_event


@dataclass
class ActionEvents:
    bulk_action_id: int
    action: str
    priority: int
    created_by: str
    flow_run_id: str
    thresholds: AlertThresholds
    #: the estimated duration of the work this run started with (None: no estimate, no slow alert)
    estimated_seconds: float | None = None
    started: float = field(default_factory=time.monotonic)
    _last_progress: float = 0.0
    _last_processed: int = -1
    _ratio_sent: bool = False
    _slow_sent: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _emit(self, name: str, **payload: object) -> None:
        try:
            emit_action_event(
                name,
                bulk_action_id=self.bulk_action_id,
                action=self.action,
                priority=self.priority,
                created_by=self.created_by,
                flow_run_id=self.flow_run_id,
                **payload,
            )
        except Exception as error:  # noqa: BLE001 - an event is advisory: it never fails the run
            logging.getLogger("bulkai.events").warning("event %s not emitted: %s", name, error)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def emit_started(self, total: int, processed: int = 0) -> None:
        """The run starts with ``processed`` of ``total`` done (a resumed action): progress is counted from there."""
        self._last_processed = processed
        self._emit(events.STARTED, total=total, estimated_seconds=self.estimated_seconds)

    def emit_resumed(self, budget_usd: float | None) -> None:
        self._emit(events.RESUMED, budget_usd=budget_usd)

    def progress(self, counts: OutcomeCounts, spent_usd: float, *, final: bool = False) -> None:
        """A progress write happened: emit progress when due, and the threshold crossings when they happen."""
        now = time.monotonic()
        with self._lock:
            # only real progress counts: a run whose batches all wait (a provider down) must look stalled
            moved = counts.processed != self._last_processed
            due = moved and (final or now - self._last_progress >= self.thresholds.progress_event_seconds)
            if due:
                self._last_progress, self._last_processed = now, counts.processed
        ratio = counts.failed / counts.processed if counts.processed else 0.0
        if due:
            self._emit(
                events.PROGRESS,
                processed=counts.processed,
                total=counts.total,
                succeeded=counts.succeeded,
                failed=counts.failed,
                skipped=counts.skipped,
                failure_ratio=ratio,
                percent=100.0 * counts.processed / counts.total if counts.total else 100.0,
                elapsed_seconds=self.elapsed(),
                spent_usd=spent_usd,
            )
        self._check_failure_ratio(counts, ratio)
        self._check_slow()

    def _check_failure_ratio(self, counts: OutcomeCounts, ratio: float) -> None:
        limit = self.thresholds
        if self._ratio_sent or counts.processed < limit.failure_min_processed or ratio <= limit.failure_ratio:
            return
        self._ratio_sent = True
        self._emit(
            events.FAILURE_RATIO_EXCEEDED,
            failure_ratio=ratio,
            threshold=limit.failure_ratio,
            processed=counts.processed,
            failed=counts.failed,
        )

    def _check_slow(self) -> None:
        estimate = self.estimated_seconds
        if self._slow_sent or not estimate:
            return
        elapsed = self.elapsed()
        if elapsed <= self.thresholds.slow_factor * estimate:
            return
        self._slow_sent = True
        self._emit(
            events.SLOW,
            elapsed_seconds=elapsed,
            estimated_seconds=estimate,
            factor=elapsed / estimate,
        )

    def check_slow(self) -> None:
        """Called on the monitor's clock too: a run stuck on one batch writes no progress but is still slow."""
        self._check_slow()

    def on_monitor(self, counts: OutcomeCounts, spent_nanousd: int, final: bool) -> None:
        """The progress monitor's callback (every progress write and tick)."""
        self.progress(counts, nano_to_usd(spent_nanousd), final=final)

    def ended(
        self,
        status: BulkActionStatus,
        reason: str | None,
        counts: OutcomeCounts,
        summary: BulkActionSummary,
        *,
        budget_stop: bool,
    ) -> None:
        """The run's end: paused (and budget reached) when it paused, finished when the action ended."""
        if status is BulkActionStatus.PAUSED:
            self.paused(
                reason or "paused", budget=budget_stop, spent_usd=summary.spend_usd, budget_usd=summary.budget_usd
            )
        else:
            self.finished(status.value, reason, counts, summary.spend_usd)

    def finished(self, status: str, reason: str | None, counts: OutcomeCounts, spent_usd: float) -> None:
        self._emit(
            events.FINISHED,
            status=status,
            reason=reason,
            total=counts.total,
            succeeded=counts.succeeded,
            failed=counts.failed,
            skipped=counts.skipped,
            seconds=self.elapsed(),
            spent_usd=spent_usd,
        )

    def paused(self, reason: str, *, budget: bool, spent_usd: float, budget_usd: float | None) -> None:
        if budget:
            self._emit(events.BUDGET_REACHED, reason=reason, spent_usd=spent_usd, budget_usd=budget_usd)
        self._emit(events.PAUSED, reason=reason)
