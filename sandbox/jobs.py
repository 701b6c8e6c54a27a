"""Long-running provider jobs: Parallel task runs and Anthropic message batches.

A job's whole life is fixed when it is created (its output and when it ends), and its status is derived from
the clock when asked. No background tasks are needed, nothing can be left running at shutdown, and a job's
timing does not depend on how often it is polled. Billing follows the same idea: the stores hand out the jobs
that ended since they were last asked (:meth:`RunStore.settle`, :meth:`BatchStore.settle`), so a job is billed
once, when it ends, whether or not anyone fetched its result.
"""

from __future__ import annotations

import heapq
import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sandbox.hashing import stable_hash
from sandbox.prices import Charge

QUEUED_FRACTION = 0.2  # a run is `queued` for the first fifth of its duration, then `running`
BATCH_EXPIRY_S = 24 * 3600.0
CANCEL_GRACE_S = 0.1  # a canceled batch is `canceling` this long before it ends


def iso(epoch: float) -> str:
    """RFC 3339 timestamp in UTC with a ``Z``, as both providers write them."""
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


@dataclass
class Clock:
    """A job's start on both clocks: monotonic for durations, wall clock for the timestamps it reports."""

    mono: float
    wall: float

    def wall_at(self, mono: float) -> float:
        return self.wall + (mono - self.mono)


# --- Parallel --------------------------------------------------------------------------------------------


@dataclass
class TaskRun:
    """A Parallel task run; ``output`` is ready at creation, ``error`` set when the run is doomed to fail."""

    run_id: str
    processor: str
    metadata: dict[str, Any] | None
    started: Clock
    duration_s: float
    output: dict[str, Any] | None
    error: dict[str, Any] | None

    @property
    def ends_at(self) -> float:
        return self.started.mono + self.duration_s

    def status(self, now: float) -> str:
        elapsed = now - self.started.mono
        if elapsed >= self.duration_s:
            return "failed" if self.error is not None else "completed"
        return "queued" if elapsed < self.duration_s * QUEUED_FRACTION else "running"

    def is_done(self, now: float) -> bool:
        return now >= self.ends_at

    def to_json(self, now: float) -> dict[str, Any]:
        status = self.status(now)
        if status == "queued":
            modified = self.started.mono
        elif status == "running":
            modified = self.started.mono + self.duration_s * QUEUED_FRACTION
        else:
            modified = self.ends_at
        return {
            "run_id": self.run_id,
            "status": status,
            "is_active": status in ("queued", "running"),
            "processor": self.processor,
            "metadata": self.metadata,
            "error": self.error if status == "failed" else None,
            "warnings": None,
            "created_at": iso(self.started.wall),
            "modified_at": iso(self.started.wall_at(modified)),
        }


class RunStore:
    """All task runs, plus what the active-run limit needs.

    ``reserved`` counts run creations admitted by the gateway but not yet stored: the limit check and the
    run's creation are separated by awaits (latency, body parsing), so without reservations concurrent
    creations could all pass the check and exceed ``max_concurrency``.
    """

    def __init__(self) -> None:
        self.runs: dict[str, TaskRun] = {}
        self.reserved = 0
        self.peak_active = 0
        self.created = 0
        self._ends: list[float] = []  # min-heap of end times of runs that may still be active
        self._unbilled: list[tuple[float, str]] = []  # min-heap of (end, run_id) of runs that will complete

    def active(self, now: float) -> int:
        while self._ends and self._ends[0] <= now:
            heapq.heappop(self._ends)
        return len(self._ends)

    def next_slot_in(self, now: float) -> float | None:
        """Seconds until an active run ends (``None`` when only reservations hold the slots)."""
        self.active(now)
        return self._ends[0] - now if self._ends else None

    def add(self, run: TaskRun, now: float, *, reserved: bool) -> None:
        self.runs[run.run_id] = run
        self.created += 1
        if reserved:
            self.reserved -= 1
        if run.duration_s > 0:
            heapq.heappush(self._ends, run.ends_at)
        if run.error is None:  # a failed run is free
            heapq.heappush(self._unbilled, (run.ends_at, run.run_id))
        self.peak_active = max(self.peak_active, self.active(now))

    def settle(self, now: float) -> list[TaskRun]:
        """The runs that completed since the last call: each is returned once, to be billed."""
        done: list[TaskRun] = []
        while self._unbilled and self._unbilled[0][0] <= now:
            done.append(self.runs[heapq.heappop(self._unbilled)[1]])
        return done

    def clear(self) -> None:
        """Forget all runs; ``reserved`` belongs to requests still in flight and is kept."""
        self.runs.clear()
        self._ends.clear()
        self._unbilled.clear()
        self.peak_active = 0
        self.created = 0


def new_run_id() -> str:
    return f"trun_{uuid.uuid4().hex}"


# --- Anthropic batches -----------------------------------------------------------------------------------

# `expired` and `canceled` outcomes come from the `expire` and `cancel` item faults; a cancel of the batch makes
# the items it stops `canceled` without them.
ItemOutcome = Literal["succeeded", "errored", "expired", "canceled"]
MAX_LIST_LIMIT = 1000


@dataclass
class BatchItem:
    custom_id: str
    outcome: ItemOutcome
    result: dict[str, Any]  # the `result` object of the item's line
    charge: Charge | None = None  # what the item costs if it succeeds before the batch ends


@dataclass
class MessageBatch:
    """A message batch; items finishing before a cancel keep their result, the others become ``canceled``."""

    batch_id: str
    items: list[BatchItem]
    started: Clock
    duration_s: float
    cancel_at: float | None = None  # monotonic time the cancel arrived

    @property
    def ends_at(self) -> float:
        end = self.started.mono + self.duration_s
        if self.cancel_at is not None:
            end = min(end, self.cancel_at + CANCEL_GRACE_S)
        return end

    def processing_status(self, now: float) -> str:
        if now >= self.ends_at:
            return "ended"
        return "canceling" if self.cancel_at is not None else "in_progress"

    def processed(self) -> int:
        """How many items (in submission order) got a result before the batch ended."""
        if self.cancel_at is None or self.duration_s <= 0:
            return len(self.items)
        fraction = (self.cancel_at - self.started.mono) / self.duration_s
        return min(len(self.items), max(0, math.floor(len(self.items) * fraction)))

    def billable(self) -> list[BatchItem]:
        """Items that succeeded before the batch ended (errored, expired and canceled ones are free)."""
        return [item for item in self.items[: self.processed()] if item.outcome == "succeeded"]

    def counts(self, now: float) -> dict[str, int]:
        counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        if self.processing_status(now) != "ended":
            counts["processing"] = len(self.items)
            return counts
        done = self.processed()
        for item in self.items[:done]:
            counts[item.outcome] += 1
        counts["canceled"] += len(self.items) - done
        return counts

    def to_json(self, now: float, results_url: str) -> dict[str, Any]:
        status = self.processing_status(now)
        ended = status == "ended"
        return {
            "id": self.batch_id,
            "type": "message_batch",
            "processing_status": status,
            "request_counts": self.counts(now),
            "ended_at": iso(self.started.wall_at(self.ends_at)) if ended else None,
            "created_at": iso(self.started.wall),
            "expires_at": iso(self.started.wall + BATCH_EXPIRY_S),
            "archived_at": None,
            "cancel_initiated_at": iso(self.started.wall_at(self.cancel_at)) if self.cancel_at is not None else None,
            "results_url": results_url if ended else None,
        }

    def result_lines(self) -> list[dict[str, Any]]:
        """One line per request, in a deterministic order unrelated to submission (order is not
        guaranteed)."""
        done = self.processed()
        lines = [
            {"custom_id": item.custom_id, "result": item.result if i < done else {"type": "canceled"}}
            for i, item in enumerate(self.items)
        ]
        return sorted(lines, key=lambda line: stable_hash(self.batch_id, str(line["custom_id"])))


class BatchStore:
    def __init__(self) -> None:
        self.batches: dict[str, MessageBatch] = {}
        self._unbilled: list[str] = []  # ids of batches not yet ended (a cancel can move their end earlier)

    def add(self, batch: MessageBatch) -> None:
        self.batches[batch.batch_id] = batch
        self._unbilled.append(batch.batch_id)

    def settle(self, now: float) -> list[MessageBatch]:
        """The batches that ended since the last call: each is returned once, to be billed."""
        ended = [self.batches[i] for i in self._unbilled if self.batches[i].processing_status(now) == "ended"]
        if ended:
            done = {batch.batch_id for batch in ended}
            self._unbilled = [i for i in self._unbilled if i not in done]
        return ended

    def page(
        self, limit: int, *, before_id: str | None = None, after_id: str | None = None
    ) -> tuple[list[MessageBatch], bool]:
        """One page of the batches, newest first, and whether more lie beyond it in the paging direction.

        ``after_id``: the ``limit`` batches right after (older than) that one; ``before_id``: the ``limit``
        batches right before (newer than) it, still newest first. Raises ``KeyError`` for an unknown id.
        """
        newest_first = list(reversed(self.batches.values()))
        index = {batch.batch_id: i for i, batch in enumerate(newest_first)}
        if before_id is not None:
            end = index[before_id]
            start = max(0, end - limit)
            return newest_first[start:end], start > 0
        start = index[after_id] + 1 if after_id is not None else 0
        return newest_first[start : start + limit], start + limit < len(newest_first)

    def clear(self) -> None:
        self.batches.clear()
        self._unbilled.clear()


def new_batch_id() -> str:
    return f"msgbatch_sandbox_{uuid.uuid4().hex[:24]}"
