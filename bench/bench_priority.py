"""Benchmark: provider slots by priority (#16) - does a waiting high-priority action get the slots first?

Each trial runs a priority-0 embedding action of 20 batches on a provider tag of its own (limit 2; the sandbox
answers each batch in 300 ms), lets it run a few batches with both slots, then starts a priority-9 action of 6
batches on the same tag.  A watcher polls the ``slot_requests`` table every 10 ms: the high action *began
waiting* when its request row was created (the row's ``created_at``) and *held its slots* when the watcher first
saw it hold all it wants.  The low action's batch start times come from the Prefect API (task runs).

* ``priority_inversions``: low-priority batches started after the high action began waiting and before it held
  its slots, over all trials (target 0).  A low batch that the low run decided to start just before the high
  request was committed reaches Running a few milliseconds later; batches started within
  ``DECISION_GRACE_SECONDS`` (50 ms) of the request are not counted (``priority_inversions_no_grace`` counts
  them too, no target).
* ``priority_high_wait_seconds``: the longest a trial's high action waited for all its slots (no target; bounded
  by one low batch plus the waiter's 0.5-s poll).

Standalone: ``python -m bench priority``.
"""

from __future__ import annotations

import threading
import time
import uuid
from datetime import datetime
from typing import Any

LIMIT = 2
LATENCY_MS = 300
LOW_BATCHES, HIGH_BATCHES = 20, 6
TRIALS = 3
DECISION_GRACE_SECONDS = 0.05


def run() -> dict[str, float]:
    from sandbox.server import SandboxServer

    with SandboxServer(port=0, config={"openai": {"latency_ms": LATENCY_MS}}) as sandbox:
        trials = [_trial(sandbox.url, trial) for trial in range(TRIALS)]
    return {
        "priority_inversions": float(sum(t["inversions"] for t in trials)),
        "priority_inversions_no_grace": float(sum(t["inversions_no_grace"] for t in trials)),
        "priority_high_wait_seconds": max(t["high_wait"] for t in trials),
    }


def _trial(url: str, trial: int) -> dict[str, float]:
    from sqlalchemy import select

    from bench.environment import seed
    from blocks.loading import load_database
    from core.schema import BulkAction
    from flows.generate_embeddings import generate_embeddings

    tag, provider = _block(url)
    db = load_database("default")
    low_ids = seed(LOW_BATCHES * 10, 7100 + 2 * trial)
    high_ids = seed(HIGH_BATCHES * 10, 7101 + 2 * trial)
    stamp = uuid.uuid4().hex[:6]
    ends: dict[str, Any] = {}

    def start(name: str, ids: list[int], priority: int) -> threading.Thread:
        def go() -> None:
            ends[name] = generate_embeddings(
                company_ids=ids, provider=provider, priority=priority, created_by=f"bench-{name}-{stamp}"
            )

        thread = threading.Thread(target=go, name=f"bench-priority-{name}")
        thread.start()
        return thread

    watcher = _Watcher(db, tag)
    watcher.start()
    low = start("low", low_ids, 0)
    _wait(lambda: watcher.low_held_all_for(3 * LATENCY_MS / 1000), "the low action to run with every slot")
    high = start("high", high_ids, 9)
    low.join(timeout=600)
    high.join(timeout=600)
    watcher.stop()
    for name in ("low", "high"):
        status = getattr(ends.get(name), "status", None)
        if status != "completed":
            raise RuntimeError(f"the {name} action ended {ends.get(name)!r}")
    with db.read_session() as session:
        runs = {
            name: str(
                session.scalar(select(BulkAction.flow_run_id).where(BulkAction.created_by == f"bench-{name}-{stamp}"))
            )
            for name in ("low", "high")
        }
    began, held = watcher.high_began_waiting(runs["high"]), watcher.high_held_all(runs["high"])
    if began is None or held is None:
        raise RuntimeError(f"the watcher missed the high action's request ({began}, {held})")
    low_starts = _batch_starts(str(runs["low"]), LOW_BATCHES)
    inside = [s for s in low_starts if began < s <= held]
    return {
        "inversions": sum(s.timestamp() > began.timestamp() + DECISION_GRACE_SECONDS for s in inside),
        "inversions_no_grace": len(inside),
        "high_wait": (held - began).total_seconds(),
    }


class _Watcher:
    """Polls ``slot_requests`` of one tag every 10 ms, keeping what each flow run's row looked like when."""

    def __init__(self, db: Any, tag: str) -> None:
        self._db, self._tag = db, tag
        self._seen: list[tuple[datetime, str, int, int, datetime]] = []  # (seen at, run, held, wanted, created)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bench-priority-watcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        from datetime import UTC

        from sqlalchemy import select

        from core.operations_tables import SlotRequest

        while not self._stop.is_set():
            with self._db.read_session() as session:
                rows = session.execute(
                    select(SlotRequest.flow_run_id, SlotRequest.held, SlotRequest.wanted, SlotRequest.created_at).where(
                        SlotRequest.tag == self._tag
                    )
                ).all()
            now = datetime.now(UTC)
            self._seen.extend((now, run, held, wanted, created) for run, held, wanted, created in rows)
            time.sleep(0.01)

    def low_held_all_for(self, seconds: float) -> bool:
        """True once a single run has been seen holding every slot for ``seconds``."""
        full = [(at, run) for at, run, held, _, _ in self._seen if held == LIMIT]
        return bool(full) and (full[-1][0] - full[0][0]).total_seconds() >= seconds

    def high_began_waiting(self, run: str) -> datetime | None:
        return next((created for _, r, _, _, created in self._seen if r == run), None)

    def high_held_all(self, run: str) -> datetime | None:
        return next((at for at, r, held, wanted, _ in self._seen if r == run and held >= wanted > 0), None)


def _batch_starts(flow_run_id: str, expected: int) -> list[datetime]:
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    def starts() -> list[datetime]:
        with get_client(sync_client=True) as client:
            runs = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[UUID(flow_run_id)])), limit=200
            )
        return sorted(r.start_time for r in runs if "-batch-" in r.name and r.start_time is not None)

    _wait(lambda: len(starts()) >= expected, "the server's record of the low batches")  # recorded a little late
    return starts()


def _block(url: str) -> tuple[str, str]:
    from pydantic import SecretStr

    from blocks.embeddings import OpenAICompatibleEmbeddings
    from blocks.loading import clear_block_cache
    from deployments.provision_limits import provision_limits

    tag = f"bench-priority-{uuid.uuid4().hex[:6]}"
    provision_limits({tag: LIMIT})
    OpenAICompatibleEmbeddings(
        base_url=f"{url}/v1",
        api_key=SecretStr("fake-bench-priority-0123456789"),
        model="sandbox-embed",
        self_hosted=True,
        calls_per_batch=1,
        retries=0,
        concurrency_tag=tag,
    ).save(tag, overwrite=True)
    clear_block_cache()
    return tag, f"openai-compatible-embeddings/{tag}"


def _wait(condition: Any, what: str, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.05)


if __name__ == "__main__":
    from bench.environment import prefect_environment

    with prefect_environment():
        print(run())
