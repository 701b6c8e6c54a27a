"""Benchmark: provider calls made for hostile companies (target 0).

The companies the scale issue found being paid for: websites ``javascript:alert(1)``, ``file:///etc/passwd``,
``http://127.0.0.1:22`` and empty, and a company whose name is blank, plus two valid companies as a control.
Each goes through ``enrich_companies`` (Parallel task runs) and ``score_llm_adoption`` (GROQ, ten calls a
company) against the sandbox, which counts what reaches it.  ``invalid_input_provider_calls`` is what the
sandbox saw beyond the valid companies' calls (runs created + chat completions); the control proves the
providers were reachable at all.
"""

from __future__ import annotations

import tempfile
from typing import Any

HOSTILE_WEBSITES = ["javascript:alert(1)", "file:///etc/passwd", "http://127.0.0.1:22", None]
VALID = 2


def run() -> dict[str, float]:
    from prefect.client.orchestration import get_client
    from prefect.filesystems import LocalFileSystem
    from sqlalchemy import update

    from bench.environment import seed
    from blocks.enrichment import ParallelEnrichment
    from blocks.llm import GroqLLM
    from blocks.loading import clear_block_cache, load_database
    from core.schema import Company
    from deployments.provision_limits import provision_limits
    from flows.enrich_companies import enrich_companies
    from flows.score_llm_adoption import score_llm_adoption
    from providers.pacing import window_limit_name
    from sandbox.server import SandboxServer

    ids = seed(len(HOSTILE_WEBSITES) + 1 + VALID, seed_value=4242)
    with load_database("default").session() as session:
        for cid, website in zip(ids, HOSTILE_WEBSITES, strict=False):
            session.execute(update(Company).where(Company.id == cid).values(website=website))
        session.execute(update(Company).where(Company.id == ids[len(HOSTILE_WEBSITES)]).values(name="   "))
    with SandboxServer(port=0, config={"parallel": {"job_duration_s": 0.1}}) as sandbox:
        provision_limits({"parallel-bench-invalid": 2, "groq-bench-invalid": 2})
        with get_client(sync_client=True) as client:
            client.upsert_global_concurrency_limit_by_name(window_limit_name("groq-bench-invalid"), 6000)
        LocalFileSystem(basepath=tempfile.mkdtemp(prefix="bench-invalid-")).save("bench-invalid", overwrite=True)
        ParallelEnrichment(
            api_key="par-bench-secret-0123456789",  # type: ignore[arg-type]
            base_url=sandbox.url,
            concurrency_tag="parallel-bench-invalid",
            storage_block="local-file-system/bench-invalid",
        ).save("bench-invalid", overwrite=True)
        GroqLLM(
            api_key="gsk-bench-secret-0123456789",  # type: ignore[arg-type]
            base_url=f"{sandbox.url}/openai/v1",
            requests_per_minute=6000,
            concurrency_tag="groq-bench-invalid",
        ).save("bench-invalid", overwrite=True)
        clear_block_cache()
        common: dict[str, Any] = {"company_ids": ids, "failure_threshold": 1.0, "created_by": "bench"}
        enriched = enrich_companies(provider="parallel-enrichment/bench-invalid", **common)
        scored = score_llm_adoption(provider="groq-llm/bench-invalid", **common)
        stats = sandbox.stats(log=False)["providers"]
        runs, chats = int(stats["parallel"]["runs_created"]), int(stats["groq"]["accepted"])
    valid_calls = VALID + 10 * VALID
    if runs + chats < valid_calls:
        raise RuntimeError(f"the valid companies did not reach the providers: {runs} runs, {chats} calls")
    invalid = getattr(enriched, "invalid_input", 0) + getattr(scored, "invalid_input", 0)
    return {
        "invalid_input_provider_calls": float(runs + chats - valid_calls),
        "invalid_input_companies_refused": float(invalid),
    }
