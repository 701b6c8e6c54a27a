"""The ``calls_per_batch`` field every provider block carries: how many provider calls one task run covers.

A task run is a checkpoint, and each one costs Prefect about 10 ms of client and 10 ms of server CPU
(measured; DESIGN.md).  A slow or paid provider wants one call per task run, so a crash repeats at most the
calls in flight; a local model or a fast embedding API wants many, so that cost is paid once per hundreds of
companies instead of every ten.  A batch that dies half-way still never resends a company it had finished:
each call commits its outcomes before the next one starts.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

#: the local MiniLM model: 20 calls of 10 texts per task run (200 companies), so Prefect's ~20 ms per task run is
#: about 1% of the model's ~3 s for 200 texts on the 2-core host (embed_pipeline_vs_raw, README), a crash repeats
#: at most ~3 s of model time per batch in flight, and a million companies are 5,000 task runs
LOCAL_MODEL_CALLS_PER_BATCH = 20
#: fast embedding APIs: 10 calls (100 texts) per task run
FAST_API_CALLS_PER_BATCH = 10
#: slow or paid per-company work (enrichment runs, LLM scoring): one call per task run
PAID_CALLS_PER_BATCH = 1


def calls_per_batch_field(default: int) -> Any:
    return Field(
        default=default,
        ge=1,
        le=1000,
        description=(
            "Provider calls per checkpointed task run: 1 for slow or paid providers (a crash repeats at most the "
            "calls in flight), more for fast ones (Prefect's per-task cost is paid once per batch)."
        ),
    )
