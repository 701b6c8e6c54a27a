"""Provision the providers' concurrency and request-window limits on the Prefect server, idempotently.

Limits live on the server, not in code, so operators change them without a deploy (Prefect UI → Concurrency).
Each provider tag gets a concurrency limit named ``tag:<tag>`` (the name Prefect's task engine uses for tags);
providers with a requests-per-minute budget also get ``window:<tag>``, the permits the LLM pacer holds for 60 s
after each call so no sliding minute ever sees more requests than the provider allows (``providers/pacing.py``).
Running this twice changes nothing; changing a number updates the limit.

    python -m deployments.provision_limits                 # the defaults below
    python -m deployments.provision_limits --set groq=2 --window groq=30
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping

from prefect.client.orchestration import get_client

#: batches of each provider allowed in flight at once (across every flow run and worker)
DEFAULT_CONCURRENCY: dict[str, int] = {
    # CPU-bound, run by one model process per core: two batches per process on the 2-core reference machine,
    # so a process always has the next batch queued while Prefect records the last (providers/minilm_processes)
    "embeddings-local": 4,
    "workers-ai": 8,
    "openai-embeddings": 8,
    "parallel": 16,
    "groq": 2,
    "anthropic": 4,
    "llm-local": 4,
    # actions that only write the company database (update_status): SQLite has one writer anyway
    "database-writes": 2,
}
#: requests in any sliding 60-s window: permits held for 60 s after each call (see providers/pacing.py)
DEFAULT_WINDOW_REQUESTS: dict[str, int] = {"groq": 30, "anthropic": 50}


def provision_limits(
    concurrency: Mapping[str, int] | None = None,
    window_requests: Mapping[str, int] | None = None,
) -> dict[str, int]:
    """Create or update every limit; returns name → limit as now set."""
    concurrency = {**DEFAULT_CONCURRENCY, **(concurrency or {})}
    window_requests = {**DEFAULT_WINDOW_REQUESTS, **(window_requests or {})}
    applied: dict[str, int] = {}
    with get_client(sync_client=True) as client:
        for tag, limit in concurrency.items():
            client.upsert_global_concurrency_limit_by_name(f"tag:{tag}", limit)
            applied[f"tag:{tag}"] = limit
        for tag, requests in window_requests.items():
            client.upsert_global_concurrency_limit_by_name(f"window:{tag}", requests)
            applied[f"window:{tag}"] = requests
    return applied


def _pairs(values: list[str]) -> dict[str, int]:
    parsed: dict[str, int] = {}
    for value in values:
        tag, _, number = value.partition("=")
        if not tag or not number.isdigit() or int(number) < 1:
            raise SystemExit(f"expected TAG=N with N ≥ 1, got {value!r}")
        parsed[tag] = int(number)
    return parsed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", action="append", default=[], metavar="TAG=N", help="concurrency limit")
    parser.add_argument("--window", action="append", default=[], metavar="TAG=N", help="requests per 60 s window")
    args = parser.parse_args(argv)
    for name, limit in provision_limits(_pairs(args.set), _pairs(args.window)).items():
        print(f"{name:28s} {limit}")


if __name__ == "__main__":
    main()
