"""Benchmark: enrich_companies throughput against the sandbox's Parallel active-run cap.

The ideal is the provider's capacity: ``cap`` runs of ``job`` seconds each, i.e. ``cap / job`` companies per
second.  ``enrich_throughput_vs_ideal`` is the measured rate (companies enriched / wall seconds of the whole
flow run, from the call to its return) divided by that; ``..._provider_window_vs_ideal`` is the same over the
provider's busy window only (first run created to last result), i.e. without the flow's start and finish.

Two configurations, each on fresh companies, its own sandbox and its own blocks:

* default (the headline, ``enrich_*``): ``tag:`` limit = ``cap / 5`` batches in flight, each running its 5 runs;
  every moment a batch spends outside its runs (Prefect task start/finish, slot hand-over, storage and
  database writes) leaves 5 of the cap's slots idle;
* pipelined (``enrich_pipelined_*``): ``cap / 5 + 2`` batches in flight and ``max_active_runs = cap`` on the
  block, so the extra batches do their overhead while other runs are active and take a run slot the moment
  one frees (the proposed fix; see ``blocks.enrichment``).

``run()`` expects the caller to have entered a Prefect harness and registered the base blocks; it starts its
own sandbox, saves its own blocks and provisions the ``tag:`` limits it needs.  Standalone:
``python -m bench.bench_enrichment [--prefect-postgres postgresql://postgres@127.0.0.1/postgres]`` sets all of
that up itself, with the Prefect server on SQLite (the test harness) or on a temporary PostgreSQL database.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

BATCH_SIZE = 5
CAP = 20  # sandbox active-run cap
JOB_S = 5.0  # sandbox run duration: under the fastest real processor (lite, 10-60 s), long enough to measure overhead
COMPANIES = 160
HEADROOM_BATCHES = 2  # extra batches in flight in the pipelined configuration


def run(cap: int = CAP, job_s: float = JOB_S, companies: int = COMPANIES) -> dict[str, float]:
    """Both configurations on fresh companies: the documented default first (the headline figure)."""
    windowed = _measure("windowed", cap, job_s, companies, batches=cap // BATCH_SIZE, max_active_runs=None)
    pipelined = _measure(
        "pipelined", cap, job_s, companies, batches=cap // BATCH_SIZE + HEADROOM_BATCHES, max_active_runs=cap
    )
    return {
        "enrich_throughput_vs_ideal": windowed["throughput_vs_ideal"],
        **{f"enrich_{key}": value for key, value in windowed.items() if key != "throughput_vs_ideal"},
        **{f"enrich_pipelined_{key}": value for key, value in pipelined.items()},
    }


def _measure(
    label: str, cap: int, job_s: float, companies: int, *, batches: int, max_active_runs: int | None
) -> dict[str, float]:
    """One enrich_companies flow run over ``companies`` new companies; the sandbox and blocks are its own."""
    from prefect.filesystems import LocalFileSystem

    from blocks.enrichment import ParallelEnrichment
    from blocks.loading import clear_block_cache, load_database
    from core.synthetic import seed_companies
    from deployments.provision_limits import provision_limits
    from flows.engine import BulkActionSummary
    from flows.enrich_companies import enrich_companies
    from sandbox.server import SandboxServer

    tag = f"bench-parallel-{label}"
    config = {"parallel": {"job_duration_s": job_s, "max_concurrency": cap}}
    with SandboxServer(port=0, config=config) as sandbox, tempfile.TemporaryDirectory() as storage:
        provision_limits({tag: batches})
        LocalFileSystem(basepath=storage).save(f"bench-enrichment-{label}", overwrite=True)
        ParallelEnrichment(
            api_key="bench-sandbox-key",  # type: ignore[arg-type]
            base_url=sandbox.url,
            concurrency_tag=tag,
            max_active_runs=max_active_runs,
            storage_block=f"local-file-system/bench-enrichment-{label}",
        ).save(f"bench-{label}", overwrite=True)
        clear_block_cache()
        db = load_database("default")
        with db.session() as session:
            ids = seed_companies(session, companies, seed=time.time_ns() % 1_000_000)

        started = time.perf_counter()
        summary = enrich_companies(company_ids=ids, provider=f"parallel-enrichment/bench-{label}")
        seconds = time.perf_counter() - started
        stats: dict[str, Any] = sandbox.stats(log=True, provider="parallel")

    assert isinstance(summary, BulkActionSummary), summary
    log = stats["log"]
    first_create = min(e["time"] for e in log if e["endpoint"] == "create_run")
    last_result = max(e["time"] + e["duration_ms"] / 1000 for e in log if e["endpoint"] == "get_result")
    parallel = stats["providers"]["parallel"]
    ideal_per_s = cap / job_s
    return {
        "throughput_vs_ideal": round(summary.succeeded / seconds / ideal_per_s, 3),
        # the same ratio over the provider's busy window only (first creation to last result): no flow start/end
        "provider_window_vs_ideal": round(summary.succeeded / (last_result - first_create) / ideal_per_s, 3),
        "seconds": round(seconds, 2),
        "ideal_seconds": round(companies / ideal_per_s, 2),
        "succeeded": float(summary.succeeded),
        "failed": float(summary.failed),
        "batches_in_flight": float(batches),
        "peak_active_runs": float(parallel["peak_active_runs"]),
        "runs_created": float(parallel["runs_created"]),
        "rate_limited_429": float(parallel["rate_limited"]),
    }


@contextmanager
def _prefect_server(home: str, postgres_admin_url: str | None) -> Iterator[None]:
    """The test harness (SQLite), or the same subprocess server on a fresh PostgreSQL database."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    with temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        if postgres_admin_url is None:
            with prefect_test_harness(server_startup_timeout=90):
                yield
            return
        import psycopg
        from prefect.server.api.server import SubprocessASGIServer
        from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_DATABASE_CONNECTION_URL

        name = f"bulkai_bench_prefect_{os.getpid()}"
        with psycopg.connect(postgres_admin_url, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        base = postgres_admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
        try:
            with temporary_settings({PREFECT_SERVER_DATABASE_CONNECTION_URL: f"{base}/{name}"}):
                server = SubprocessASGIServer()
                server.start(timeout=90)
                try:
                    with temporary_settings({PREFECT_API_URL: server.api_url}):
                        yield
                finally:
                    server.stop()
        finally:
            with psycopg.connect(postgres_admin_url, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main(argv: list[str] | None = None) -> None:
    """Run standalone: a temporary Prefect server and company database, then the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--prefect-postgres",
        metavar="ADMIN_URL",
        help="run the Prefect server on a temporary PostgreSQL database (e.g. postgresql://postgres@127.0.0.1/postgres)",
    )
    parser.add_argument("--companies", type=int, default=COMPANIES)
    args = parser.parse_args(argv)
    home = tempfile.mkdtemp(prefix="bulkai-bench-enrich-")
    os.environ["BULKAI_HOME"] = home
    os.environ.setdefault("PREFECT_RESULTS_LOCAL_STORAGE_PATH", os.path.join(home, "results"))
    from deployments.provision_limits import provision_limits
    from deployments.register_blocks import register_blocks

    with _prefect_server(home, args.prefect_postgres):
        register_blocks(database_url=f"sqlite:///{home}/companies.db", overwrite=True)
        provision_limits()
        print(json.dumps(run(companies=args.companies), indent=2))


if __name__ == "__main__":
    main()
