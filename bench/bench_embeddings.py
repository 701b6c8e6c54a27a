"""embed_pipeline_vs_raw: local embeddings through the full flow ÷ the raw model's encode throughput.

The raw figure is ``MiniLMEncoder.encode`` over all 2,000 texts in one call, the model at its best on this
machine (one packed batch per core); the pipeline figure is ``generate_embeddings`` over the same companies:
validation, batches of 10 as Prefect task runs, checkpoints, the database writes and the bookkeeping.

A shared 2-core VM runs the same work 10-15% faster or slower from one minute to the next, so one pair of
measurements is mostly noise.  The benchmark runs three trials, each the pipeline over 2,000 companies of its
own (the pipeline is idempotent: companies it has embedded cost nothing the second time) between two raw
measurements of the same texts, whose mean time is the trial's baseline (the two sides cancel a machine that
drifts during the trial), every measurement started on a quiet server; it reports the median trial's ratio,
with the spread in ``embed_pipeline_vs_raw_min``/``_max``.

What sets the ratio is Prefect's fixed cost per task run against the model's time per batch.  Measured on an
AVX2-only host (2,000 texts, 45 s raw): our batch code without Prefect (``process_batch.fn`` on two threads)
took 46 s, 0.93-0.98 of raw; the flow took 51-52 s, about 30 ms of wall time per batch for Prefect's client
and server.  That cost is plain Python and does not shrink with the CPU's vector units, while the model does: an
earlier host ran the model 2.5 times faster (106 against 45 texts/s; most likely AVX-512, which OpenBLAS uses
when it is there) and the same pipeline scored 0.81-0.84 on it.
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

    ids = seed(COMPANIES, seed_value=seed_value)
    with load_database("default").session() as session:
        texts = [embedding_text(c) for c in load_companies(session, ids)]
    encoder = MiniLMEncoder.load()
    encoder.encode(texts[:64])  # warm-up: first-call allocations and the pool are not the model's throughput

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
