"""engine_ms_per_company: wall ms per company for 10,000 companies through the engine, instant provider."""

from __future__ import annotations

import os
import time

from bench.environment import seed
from bench.instant_provider import register

COMPANIES = int(os.environ.get("BENCH_ENGINE_COMPANIES", "10000"))
IN_FLIGHT = int(os.environ.get("BENCH_ENGINE_IN_FLIGHT", "8"))


def run() -> dict[str, float]:
    from flows.engine import BulkActionSummary
    from flows.generate_embeddings import generate_embeddings

    provider = register(IN_FLIGHT)
    ids = seed(COMPANIES, seed_value=9001)
    started = time.perf_counter()
    summary = generate_embeddings(company_ids=ids, provider=provider, created_by="bench")
    wall = time.perf_counter() - started
    assert isinstance(summary, BulkActionSummary) and summary.succeeded == COMPANIES, summary
    return {"engine_ms_per_company": 1000.0 * wall / COMPANIES, "engine_batches_per_second": summary.batches / wall}
