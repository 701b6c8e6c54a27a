"""Benchmark: score_llm_adoption against GROQ's per-minute request limit, held at the sandbox (600/min, 60-s window).

The job is sized past one window's budget (``COMPANIES`` x 10 calls = 1.1 x the limit), so work is always
waiting and the pacer, not the pipeline, decides when requests go out; it runs a little over a minute, so the
sandbox sees one full 60-s window and the start of the next.

* ``score_requests_per_min_vs_limit``: requests the sandbox accepted in the first 60 s after the first one,
  divided by the limit: the share of a full minute's budget the pacer used while work was waiting (target
  >= 0.9).
* ``score_429s``: requests the sandbox refused with 429 (target 0: the pacer must never send one too many).
* ``score_peak_window_vs_limit``: the most requests the sandbox accepted in any sliding 60-s window, divided by
  the limit (target <= 1.0; a token bucket such as Prefect's ``rate_limit()`` reaches ~2 here).

``run()`` expects the caller to have entered a Prefect harness and registered the base blocks; it starts its own
sandbox, saves its own GROQ block and provisions the limits it needs (``tag:`` for batches in flight,
``window:`` for the shared request window).  Standalone: ``python -m bench.bench_scoring`` does all of that.
"""

from __future__ import annotations

import logging
import time

LIMIT = 600  # requests per minute enforced by the sandbox and configured on the block
WINDOW_S = 60.0
CALLS_PER_COMPANY = 10
COMPANIES = LIMIT * 11 // 10 // CALLS_PER_COMPANY  # 1.1 windows of work
TAG = "bench-groq"
BATCHES_IN_FLIGHT = 2  # as provisioned for GROQ by default

logger = logging.getLogger(__name__)


def run(limit: int = LIMIT, companies: int = COMPANIES) -> dict[str, float]:
    from prefect.client.orchestration import get_client
    from pydantic import SecretStr

    from blocks.llm import GroqLLM
    from blocks.loading import clear_block_cache, load_database
    from core.synthetic import seed_companies
    from deployments.provision_limits import provision_limits
    from flows.engine import BulkActionSummary
    from flows.score_llm_adoption import score_llm_adoption
    from providers.pacing import window_limit_name
    from sandbox.server import SandboxServer

    with SandboxServer(port=0, config={"groq": {"requests_per_minute": limit}}) as sandbox:
        provision_limits({TAG: BATCHES_IN_FLIGHT})
        with get_client(sync_client=True) as client:
            client.upsert_global_concurrency_limit_by_name(window_limit_name(TAG), limit)
        GroqLLM(
            api_key=SecretStr("gsk-bench-sandbox-key"),
            base_url=f"{sandbox.url}/openai/v1",
            requests_per_minute=limit,
            concurrency_tag=TAG,
        ).save("bench", overwrite=True)
        clear_block_cache()
        with load_database("default").session() as session:
            ids = seed_companies(session, companies, seed=int(time.time()) % 100_000)

        started = time.perf_counter()
        summary = score_llm_adoption(company_ids=ids, provider="groq-llm/bench")
        seconds = time.perf_counter() - started
        if not isinstance(summary, BulkActionSummary) or summary.failed:
            raise RuntimeError(f"scoring did not complete cleanly: {summary}")

        stats = sandbox.stats(provider="groq")
        groq = stats["providers"]["groq"]
        accepted = sorted(entry["time"] for entry in stats["log"] if entry["status"] == 200)
        first_minute = sum(1 for t in accepted if t < accepted[0] + WINDOW_S)
        logger.warning(
            "scoring: %d companies, %d calls accepted, %d refused (429) in %.1f s; first minute %d, peak window %d",
            companies,
            groq["accepted"],
            groq["rate_limited"],
            seconds,
            first_minute,
            groq["peak_window_60s"],
        )
        return {
            "score_requests_per_min_vs_limit": first_minute / limit,
            "score_429s": float(groq["rate_limited"]),
            "score_peak_window_vs_limit": groq["peak_window_60s"] / limit,
        }


if __name__ == "__main__":
    from bench.environment import prefect_environment

    logging.basicConfig(level=logging.WARNING)
    with prefect_environment():
        for key, value in run().items():
            print(f"{key:40s} {value:10.4f}")
