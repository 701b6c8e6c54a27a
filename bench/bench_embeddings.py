"""embed_pipeline_vs_raw: local embeddings through the full flow ÷ the raw model's encode throughput.

The raw figure is ``MiniLMEncoder.encode`` over all 2,000 texts in one call, the model at its best on this
machine (one packed batch per core); the pipeline figure is ``generate_embeddings`` over the same companies:
validation, batches of 10 as Prefect task runs, checkpoints, the database writes and the bookkeeping.
"""

from __future__ import annotations

import time

from bench.environment import seed

COMPANIES = 2_000


def run() -> dict[str, float]:
    from blocks.loading import load_database
    from core.store import load_companies
    from core.text import embedding_text
    from flows.engine import BulkActionSummary
    from flows.generate_embeddings import generate_embeddings
    from providers.local_minilm import MiniLMEncoder

    ids = seed(COMPANIES, seed_value=9002)
    with load_database("default").session() as session:
        texts = [embedding_text(c) for c in load_companies(session, ids)]
    encoder = MiniLMEncoder.load()
    encoder.encode(texts[:64])  # warm-up: first-call allocations and the pool are not the model's throughput
    started = time.perf_counter()
    encoder.encode(texts)
    raw = COMPANIES / (time.perf_counter() - started)

    started = time.perf_counter()
    summary = generate_embeddings(company_ids=ids, created_by="bench")
    pipeline = COMPANIES / (time.perf_counter() - started)
    assert isinstance(summary, BulkActionSummary) and summary.succeeded == COMPANIES, summary
    return {
        "embed_pipeline_vs_raw": pipeline / raw,
        "embed_raw_texts_per_second": raw,
        "embed_pipeline_texts_per_second": pipeline,
    }
