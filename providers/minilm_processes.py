"""The local MiniLM model in worker processes, so its arithmetic never queues behind Prefect for the GIL.

Why processes: a bulk action's batch threads share one interpreter with Prefect's task engine, its event loop
thread and the engine's own loop.  The model releases the GIL inside each matmul, but a batch of ten texts is
hundreds of small numpy calls (attention runs per text), and each one has to win the GIL back from whichever
Prefect thread is formatting events or writing a checkpoint at that moment.  Measured on the 2-core reference
machine (AVX-512 host, 2,000 texts, raw encoder 123-127 texts/s), ``generate_embeddings`` reached 0.84 of the raw
encoder with the model in the batch threads, whatever the number of batches in flight (2 or 3); with the same
encoder in one worker process per core it reached 0.875-0.91 with 3-4 batches in flight, and the processes'
CPU time equalled the raw encoder's (the inter-process traffic, ten strings in and a 10 x 384 float32 array
out, is noise).  The raw encoder itself is no faster in processes than in threads (126 against 127 texts/s),
so this is contention removed, not a faster model.

Each worker loads the weights once (about 0.5 s, 90 MB) and runs one ``encode`` at a time on a single BLAS
thread.  Workers are spawned, not forked (forking a process that runs Prefect's threads is unsafe), and each
exits as soon as the process that started it is gone, killed or not.  A worker that dies (the OOM killer, a
signal) breaks the pool; the next call replaces the pool and tries once more, and a second loss surfaces as a
retryable :class:`~core.errors.ModelWorkerLostError`, which the batch task isolates company by company.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.connection import wait

import numpy as np
import numpy.typing as npt

from core.errors import ModelWorkerLostError

#: the encoder of this worker process, loaded by ``_start_worker``
_worker_encoder = None


def default_worker_processes() -> int:
    """One worker per core this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _start_worker() -> None:
    """Pool initializer: load the model, and leave when the parent leaves."""
    global _worker_encoder
    from providers.local_minilm import MiniLMEncoder

    _worker_encoder = MiniLMEncoder.load()
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_with, args=(parent.sentinel,), name="exit-with-parent", daemon=True).start()


def _exit_with(parent_sentinel: int) -> None:
    # A pool's workers hold both ends of its call queue, so a parent killed with SIGKILL never closes the pipe
    # they wait on: without this they would sleep forever, 90 MB of weights each.
    wait([parent_sentinel])
    os._exit(0)


def _encode_in_worker(texts: list[str], batch_size: int) -> npt.NDArray[np.float32]:
    if _worker_encoder is None:  # pragma: no cover - the initializer always runs first
        raise RuntimeError("MiniLM worker used before its initializer ran")
    vectors: npt.NDArray[np.float32] = _worker_encoder.encode(texts, batch_size=batch_size)
    return vectors


class MiniLMProcessPool:
    """``encode`` on a pool of model processes; safe to call from many threads at once."""

    def __init__(self, processes: int) -> None:
        if processes < 1:
            raise ValueError(f"a MiniLM process pool needs at least one process, got {processes}")
        self.processes = processes
        self._lock = threading.Lock()
        self._executor: ProcessPoolExecutor | None = None

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> npt.NDArray[np.float32]:
        """Embed ``texts`` in a worker: the same vectors as ``MiniLMEncoder.encode`` in this process."""
        if isinstance(texts, str):
            raise TypeError("encode() takes a sequence of texts, not a single str")
        payload = list(texts)
        for attempt in (1, 2):
            executor = self._running_executor()
            try:
                return executor.submit(_encode_in_worker, payload, batch_size).result()
            except BrokenProcessPool as exc:
                self._discard(executor)
                if attempt == 2:
                    error = ModelWorkerLostError(f"a model worker process died twice in a row ({exc})")
                    error.attempts = 2
                    raise error from None
        raise AssertionError("unreachable")  # pragma: no cover

    def start(self) -> None:
        """Start every worker and wait until each has loaded the model (otherwise the first calls do it)."""
        executor = self._running_executor()
        warm_ups = [executor.submit(_encode_in_worker, ["warm-up"], 1) for _ in range(self.processes)]
        for future in warm_ups:
            future.result()

    def shutdown(self) -> None:
        """Stop the workers (they also stop with this process)."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)

    def worker_pids(self) -> list[int]:
        """The running workers' process ids (for tests and diagnostics)."""
        with self._lock:
            processes = getattr(self._executor, "_processes", None) or {}
            return sorted(processes)

    def _running_executor(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ProcessPoolExecutor(
                    max_workers=self.processes,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_start_worker,
                )
            return self._executor

    def _discard(self, broken: ProcessPoolExecutor) -> None:
        """Forget a broken pool once, however many threads saw it break."""
        with self._lock:
            if self._executor is broken:
                self._executor = None
        broken.shutdown(wait=False, cancel_futures=True)


_POOLS: dict[int, MiniLMProcessPool] = {}
_POOLS_LOCK = threading.Lock()


def shared_pool(processes: int | None = None) -> MiniLMProcessPool:
    """The process-wide pool of ``processes`` workers (default: one per core), started on first use."""
    count = processes or default_worker_processes()
    with _POOLS_LOCK:
        pool = _POOLS.get(count)
        if pool is None:
            pool = _POOLS[count] = MiniLMProcessPool(count)
        return pool
