"""embed_pipeline_vs_raw: local embeddings through the full flow ÷ the raw model's encode throughput.

The raw figure is ``MiniLMEncoder.encode`` over all 2,000 texts in one call, the model at its best on this
machine (one packed batch per core, in this process); the pipeline figure is ``generate_embeddings`` over the
same companies: validation, batches of 10 as Prefect task runs, checkpoints, the database writes and the
bookkeeping, with the model in the local provider's worker processes (``providers/minilm_processes.py``).
Both sides are measured with the model loaded: the raw encoder after a warm-up call, the provider's workers
after ``start()``.

A shared 2-core VM runs the same work 10-15% faster or slower from one minute to the next, so one pair of
measurements is mostly noise.  The benchmark runs three trials, each the pipeline over 2,000 companies of its
own (the pipeline is idempotent: companies it has embedded cost nothing the second time) between two raw
measurements of the same texts, whose mean time is the trial's baseline (the two sides cancel a machine that
drifts during the trial), every measurement started on a quiet server; it reports the median trial's ratio,
with the spread in ``embed_pipeline_vs_raw_min``/``_max``.

What sets the ratio is Prefect's fixed cost per task run (about 10 ms of client CPU and 10 ms of server CPU
here) against the model's time per batch (about 160 ms of one core for ten texts on an AVX-512 host, 2.5 times
more on an AVX2-only one).  With the model in the batch threads the ratio stayed at 0.84 on the AVX-512 host
whatever the batches in flight: the model's hundreds of small numpy calls per batch queued behind Prefect's
threads for the GIL.  In worker processes, with two batches per process in flight, it reached 0.875-0.91.
"""

from __future__ import annotations

import statistics
import time

from bench.environment import seed, wait_for_quiet_server

COMPANIES = 2_000
TRIALS = 3


def _trial(seed_value: int) -> tuple[float, float]:
    """(raw, pipeline) texts per second over one fresh set of companies."""
    from blocks.loading import load_database
    from core.store import load_companies
    from core.text import embedding_text
    from flows.engine import BulkActionSummary
    from flows.generate_embeddings import generate_embeddings
    from providers.local_minilm import MiniLMEncoder
    from providers.minilm_processes import shared_pool

    ids = seed(COMPANIES, seed_value=seed_value)
    with load_database("default").session() as session:
        texts = [embedding_text(c) for c in load_companies(session, ids)]
    encoder = MiniLMEncoder.load()
    encoder.encode(texts[:64])  # warm-up: first-call allocations and the pool are not the model's throughput
    shared_pool().start()  # the same for the pipeline: its workers load the model before the clock starts

    def raw_seconds() -> float:
        wait_for_quiet_server()  # the last flow run's task runs are still being recorded for a second or two
        started = time.perf_counter()
        encoder.encode(texts)
        return time.perf_counter() - started

    before = raw_seconds()
    wait_for_quiet_server()
    started = time.perf_counter()
    summary = generate_embeddings(company_ids=ids, created_by="bench")
    pipeline = COMPANIES / (time.perf_counter() - started)
    assert isinstance(summary, BulkActionSummary) and summary.succeeded == COMPANIES, summary
    after = raw_seconds()
    return COMPANIES / ((before + after) / 2), pipeline


def run() -> dict[str, float]:
    trials = [_trial(seed_value=9002 + n) for n in range(TRIALS)]
    ratios = [pipeline / raw for raw, pipeline in trials]
    median = statistics.median(ratios)
    raw, pipeline = trials[ratios.index(median)]
    return {
        "embed_pipeline_vs_raw": median,
        "embed_pipeline_vs_raw_min": min(ratios),
        "embed_pipeline_vs_raw_max": max(ratios),
        "embed_raw_texts_per_second": raw,
        "embed_pipeline_texts_per_second": pipeline,
    }
