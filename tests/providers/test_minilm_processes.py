"""The local model in worker processes (providers.minilm_processes): same vectors, survives dead workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from blocks.embeddings import LocalMiniLMEmbeddings
from core.errors import ModelWorkerLostError, RetryableProviderError
from providers.embeddings import LocalMiniLMClient
from providers.local_minilm import MiniLMEncoder
from providers.minilm_processes import MiniLMProcessPool, shared_pool

REPO_ROOT = Path(__file__).resolve().parents[2]
TEXTS = [
    "The weather is lovely today.",
    "It's so sunny outside!",
    "He drove to the stadium.",
    "Company: Acme Robotics. Industry: Machinery. Business: autonomous forklifts. Location: NL.",
    "",
    "ok",
]


@pytest.fixture
def pool() -> Iterator[MiniLMProcessPool]:
    pool = MiniLMProcessPool(1)
    yield pool
    pool.shutdown()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (our dead child not yet reaped) counts as gone
    stat = Path(f"/proc/{pid}/stat")
    return not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


def _wait_until(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_workers_give_the_in_process_vectors_and_the_reference_similarities(pool: MiniLMProcessPool) -> None:
    in_process = MiniLMEncoder.load().encode(TEXTS)
    in_workers = pool.encode(TEXTS)
    assert in_workers.dtype == np.float32 and in_workers.shape == (len(TEXTS), 384)
    np.testing.assert_allclose(in_workers, in_process, atol=1e-6)
    sims = in_workers[:3] @ in_workers[:3].T
    assert sims[0, 1] == pytest.approx(0.6660, abs=1e-3)
    assert sims[0, 2] == pytest.approx(0.1046, abs=1e-3)
    assert sims[1, 2] == pytest.approx(0.1411, abs=1e-3)


def test_start_brings_up_every_worker_with_the_model_loaded() -> None:
    pool = MiniLMProcessPool(2)
    try:
        pool.start()
        pids = pool.worker_pids()
        assert len(pids) == 2 and all(_alive(pid) for pid in pids)
        assert pool.encode(["warm"]).shape == (1, 384)
        assert pool.worker_pids() == pids  # no new processes for later calls
    finally:
        pool.shutdown()
    _wait_until(lambda: not any(_alive(pid) for pid in pids), 10, "the workers to stop at shutdown")


def test_a_worker_killed_between_calls_is_replaced(pool: MiniLMProcessPool) -> None:
    pool.start()
    (old,) = pool.worker_pids()
    os.kill(old, signal.SIGKILL)
    _wait_until(lambda: not _alive(old), 10, "the killed worker to die")
    vectors = pool.encode(TEXTS[:3])
    np.testing.assert_allclose(vectors, MiniLMEncoder.load().encode(TEXTS[:3]), atol=1e-6)
    (new,) = pool.worker_pids()
    assert new != old


class _CallInFlight:
    """``pool.encode(texts)`` in a thread of its own, started once the pool's one worker is busy with it."""

    def __init__(self, pool: MiniLMProcessPool, texts: list[str]) -> None:
        (self.worker,) = pool.worker_pids()
        self.vectors: object = None
        self.error: BaseException | None = None
        busy_from = _cpu_seconds(self.worker)
        self._thread = threading.Thread(target=self._call, args=(pool, texts))
        self._thread.start()
        _wait_until(lambda: _cpu_seconds(self.worker) - busy_from > 0.3, 30, "the worker to be busy encoding")

    def _call(self, pool: MiniLMProcessPool, texts: list[str]) -> None:
        try:
            self.vectors = pool.encode(texts)
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            self.error = exc

    def join(self) -> None:
        self._thread.join(timeout=120)
        assert not self._thread.is_alive()


BIG_BATCH = [f"Company number {i} makes things for other companies in country {i % 40}." for i in range(1000)]


def test_a_worker_killed_mid_call_is_replaced_and_the_call_still_answers(pool: MiniLMProcessPool) -> None:
    pool.start()
    call = _CallInFlight(pool, BIG_BATCH)
    os.kill(call.worker, signal.SIGKILL)
    call.join()
    assert call.error is None and isinstance(call.vectors, np.ndarray) and call.vectors.shape == (1000, 384)
    np.testing.assert_allclose(call.vectors[:5], MiniLMEncoder.load().encode(BIG_BATCH[:5]), atol=1e-6)
    assert pool.worker_pids() != [call.worker]


def test_a_worker_lost_on_the_retry_too_is_a_retryable_provider_error(pool: MiniLMProcessPool) -> None:
    pool.start()
    call = _CallInFlight(pool, BIG_BATCH)
    os.kill(call.worker, signal.SIGKILL)
    _wait_until(lambda: [pid for pid in pool.worker_pids() if pid != call.worker], 30, "the replacement worker")
    (second,) = [pid for pid in pool.worker_pids() if pid != call.worker]
    os.kill(second, signal.SIGKILL)
    call.join()
    assert isinstance(call.error, ModelWorkerLostError) and isinstance(call.error, RetryableProviderError)
    assert call.error.retryable and call.error.attempts == 2
    assert pool.encode(TEXTS[:1]).shape == (1, 384)  # and the next call starts afresh


def test_workers_leave_with_a_parent_killed_by_sigkill() -> None:
    script = textwrap.dedent(
        """
        import sys, time
        from providers.minilm_processes import MiniLMProcessPool

        pool = MiniLMProcessPool(2)
        pool.start()
        print(" ".join(map(str, pool.worker_pids())), flush=True)
        sys.stdin.read()  # until the test kills us
        """
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert parent.stdout is not None
        pids = [int(pid) for pid in parent.stdout.readline().split()]
        assert len(pids) == 2 and all(_alive(pid) for pid in pids)
        parent.kill()
        parent.wait(timeout=10)
        _wait_until(lambda: not any(_alive(pid) for pid in pids), 15, "orphaned workers to exit")
    finally:
        parent.kill()
        parent.wait(timeout=10)


def test_the_block_chooses_processes_or_the_calling_thread() -> None:
    in_thread = LocalMiniLMEmbeddings(worker_processes=0).get_client()
    in_workers = LocalMiniLMEmbeddings().get_client()
    assert in_thread.model_id == in_workers.model_id == "sentence-transformers/all-MiniLM-L6-v2"
    np.testing.assert_allclose(in_thread.embed(TEXTS), in_workers.embed(TEXTS), atol=1e-6)
    assert shared_pool().worker_pids(), "the default client runs the model in worker processes"
    with pytest.raises(ValueError, match="worker_processes"):
        LocalMiniLMClient(worker_processes=-1)
