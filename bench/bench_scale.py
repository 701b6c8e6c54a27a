"""Scale: does a bulk action cost the same per company at a million companies as at 100,000?

For each size N (default 100,000 then 1,000,000; ``BENCH_SCALE_SIZES="10000,20000"`` overrides, the first size
then plays the 100k part and the last the 1m part of every key below):

1. A fresh company database: a SQLite file in the bench WORKDIR, or a new PostgreSQL database on
   ``BENCH_SCALE_POSTGRES`` (else ``BULKAI_TEST_POSTGRES``, else ``postgresql://postgres@127.0.0.1:5432/postgres``)
   dropped afterwards.  It is saved as the ``company-database`` block ``scale-<backend>-<N>`` and migrated by the
   block.
2. N synthetic companies (``core.synthetic.generate_companies``, in pieces of 20,000 with their own seeds: one call
   grows worse than linearly with N and would hold an estimated gigabyte of objects at a million) inserted with Core
   ``insert(companies)`` executemany, 10,000 rows a statement, in one transaction; on PostgreSQL ``ANALYZE``
   follows, as autovacuum would do.  Every 100th company gets the country ``Atlantis``; the action's selection is
   ``{"filter": {"statuses": ["active"], "countries": <the twelve real ones>}, "order": "priority"}``, so the
   database filters (and leaves out 1 %) and ranks the rest itself.  Seeding is not timed into any figure.
3. ``generate_embeddings(selection=..., provider="bench-instant-embeddings/default", database=<block>,
   max_companies=2_000_000)`` runs in a subprocess of its own (``python -c``, the bench environment, the temporary
   server's ``PREFECT_API_URL``); the instant provider's limit is 4, the local-model default, and its
   ``calls_per_batch`` is the local model's default (``blocks/batching.py``), so the batches (task runs) are
   those of a local-model action.

Figures (the ``1m`` keys are the largest size, ``100k`` the smallest; ``scale_companies_*`` say what they were):

* ``scale_ms_per_company`` / ``scale_ms_per_company_100k``: ``BulkActionSummary.seconds`` (the flow's own clock,
  from ``run_bulk_action``'s start: selection, batches, progress and the final recount; not the interpreter's
  and Prefect's start-up) × 1000 / the companies the action ran on (0.99 N: the filter leaves 1 % out, so this
  is the stricter reading of "per company").  ``scale_growth_1m_vs_100k`` is their ratio.
* ``scale_peak_rss_mb``: the flow-run process's own peak RSS: its ``VmHWM`` (``/proc/self/status``) read by the
  process itself once the flow has returned.  Not ``os.wait4``'s ``ru_maxrss``: that also counts the peak of
  this bench process, whose address space the child shares until it execs (see ``_run_flow``).
* ``scale_task_runs``: task runs of the flow run, counted by the server (``POST /task_runs/count``, which the
  3.9.1 client does not wrap) once it has recorded them all: after ``wait_for_quiet_server`` and two equal
  counts a recorder flush apart.
* ``scale_selection_seconds_*``: measured by polling the company database every 50 ms for the first outcome row
  (the selection is one INSERT ... SELECT in the transaction that creates the record, so the first row seen
  means all of them), from the flow run's ``start_time`` on the server (the Running state's timestamp; the
  same machine's clock).  It covers the engine's start (blocks, provider limit), the record and the
  INSERT ... SELECT with its commit.
* ``scale_final_recount_seconds_*``: the end-of-run recount (``outcome_counts`` + ``error_summary``, what
  ``finish_action`` reads) re-timed by this process on the same database right after the flow run exited, so
  with a warm cache and nothing else writing; the flow's own recount is not logged separately.
* PostgreSQL: the smallest size (``scale_ms_per_company_100k_postgres``); with ``BENCH_SCALE_POSTGRES_1M=1`` every
  size, and ``scale_ms_per_company_postgres`` and ``scale_growth_1m_vs_100k_postgres``.

A size that fails ends the benchmark; the figures of the sizes before it are kept (``ScaleBenchError``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast
from uuid import UUID

from bench.environment import WORKDIR, wait_for_quiet_server
from bench.instant_provider import register

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SIZES = [100_000, 1_000_000]
SIZES = sorted(int(s) for s in os.environ.get("BENCH_SCALE_SIZES", "").replace(" ", "").split(",") if s) or (
    DEFAULT_SIZES
)
POSTGRES_1M = os.environ.get("BENCH_SCALE_POSTGRES_1M") == "1"
POSTGRES_ADMIN_URL = os.environ.get(
    "BENCH_SCALE_POSTGRES", os.environ.get("BULKAI_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
)
#: the embeddings-local provider's default limit
IN_FLIGHT = 4
MAX_COMPANIES = 2_000_000
#: generate_companies call size: one call grows worse than linearly (measured once: 49 µs a company at 100k, 18 at
#: 20k); pieces of the size the seeding time was measured at extrapolate linearly
GENERATE_PIECE = 20_000
INSERT_CHUNK = 10_000
SEED = 4242
EXCLUDED_COUNTRY = "Atlantis"
EXCLUDE_EVERY = 100
POLL_SECONDS = 0.05
MARKER = "BENCH_SCALE_SUMMARY "


class ScaleBenchError(RuntimeError):
    """A size failed; ``partial_results`` keeps what the sizes before it measured (``bench.__main__`` uses them)."""

    def __init__(self, message: str, partial_results: dict[str, float]) -> None:
        super().__init__(message)
        self.partial_results = partial_results


@dataclass(frozen=True)
class Measured:
    backend: str
    companies: int
    selected: int
    seed_seconds: float
    seconds: float
    process_seconds: float
    selection_seconds: float
    recount_seconds: float
    peak_rss_mb: float
    task_runs: int
    batches: int

    @property
    def ms_per_company(self) -> float:
        return 1000.0 * self.seconds / self.selected  # the companies the action ran on


def run() -> dict[str, float]:
    provider = register(IN_FLIGHT)
    if SIZES != DEFAULT_SIZES:
        print(f"scale: BENCH_SCALE_SIZES={SIZES}: the 100k keys are {SIZES[0]:,}, the 1m keys {SIZES[-1]:,}")
    results: dict[str, float] = {}
    runs: list[tuple[str, list[int]]] = [("sqlite", SIZES), ("postgres", SIZES if POSTGRES_1M else SIZES[:1])]
    for backend, sizes in runs:
        measured: list[Measured] = []
        for n in sizes:
            try:
                measured.append(_measure(backend, n, provider))
            except Exception as exc:
                raise ScaleBenchError(f"{backend} at {n:,}: {type(exc).__name__}: {exc}", results) from exc
            results.update(_figures(backend, measured))
    return results


def _figures(backend: str, measured: list[Measured]) -> dict[str, float]:
    """The keys of one backend's sizes measured so far (smallest: ``100k``, largest: ``1m``)."""
    small, large = measured[0], measured[-1]
    if backend == "postgres":
        figures = {"scale_ms_per_company_100k_postgres": small.ms_per_company}
        if len(measured) > 1:
            figures["scale_ms_per_company_postgres"] = large.ms_per_company
            figures["scale_growth_1m_vs_100k_postgres"] = large.ms_per_company / small.ms_per_company
        return figures
    figures = {
        "scale_companies_100k": float(small.companies),
        "scale_ms_per_company_100k": small.ms_per_company,
        "scale_selection_seconds_100k": small.selection_seconds,
        "scale_final_recount_seconds_100k": small.recount_seconds,
        "scale_peak_rss_mb_100k": small.peak_rss_mb,
        "scale_task_runs_100k": float(small.task_runs),
    }
    if len(measured) > 1:
        figures |= {
            "scale_companies_1m": float(large.companies),
            "scale_ms_per_company": large.ms_per_company,
            "scale_growth_1m_vs_100k": large.ms_per_company / small.ms_per_company,
            "scale_peak_rss_mb": large.peak_rss_mb,
            "scale_task_runs": float(large.task_runs),
            "scale_selection_seconds_1m": large.selection_seconds,
            "scale_final_recount_seconds_1m": large.recount_seconds,
        }
    return figures


# --- one size ------------------------------------------------------------------------------------------------


def _measure(backend: str, n: int, provider: str) -> Measured:
    from blocks.database import CompanyDatabase

    with _fresh_database(backend, n) as url:
        block = f"scale-{backend}-{n}"
        CompanyDatabase(url=url).save(block, overwrite=True)  # type: ignore[arg-type]
        db = CompanyDatabase(url=url)  # type: ignore[arg-type]
        started = time.perf_counter()
        countries = _seed(db, n)
        seed_seconds = time.perf_counter() - started
        selected = n - len(range(0, n, EXCLUDE_EVERY))
        print(f"scale: {backend} {n:,} companies seeded in {seed_seconds:.1f} s", flush=True)
        selection = {"filter": {"statuses": ["active"], "countries": countries}, "order": "priority"}
        wait_for_quiet_server()  # the previous size's events are not recorded on this one's time
        summary, process_seconds, seen_at, peak_rss_mb = _run_flow(db, block, selection, provider, n)
        if summary.get("status") != "completed" or summary.get("succeeded") != selected:
            raise RuntimeError(f"expected {selected:,} companies to succeed: {summary}")
        bulk_action_id = int(summary["bulk_action_id"])
        flow_run_id = _flow_run_of(db, bulk_action_id)
        measured = Measured(
            backend=backend,
            companies=n,
            selected=selected,
            seed_seconds=seed_seconds,
            seconds=float(summary["seconds"]),
            process_seconds=process_seconds,
            selection_seconds=seen_at - _flow_run_start(flow_run_id),
            recount_seconds=_recount_seconds(db, bulk_action_id),
            peak_rss_mb=peak_rss_mb,
            task_runs=_settled_task_runs(flow_run_id),
            batches=int(summary["batches"]),
        )
    print(
        f"scale: {backend} {n:,}: {measured.ms_per_company:.3f} ms a company ({measured.seconds:.1f} s in the flow, "
        f"{measured.process_seconds:.1f} s in the process), selection {measured.selection_seconds:.2f} s, "
        f"recount {measured.recount_seconds:.3f} s, peak RSS {measured.peak_rss_mb:.0f} MB, "
        f"{measured.task_runs} task runs for {measured.batches} batches; seeding took {measured.seed_seconds:.1f} s",
        flush=True,
    )
    return measured


@contextmanager
def _fresh_database(backend: str, n: int) -> Iterator[str]:
    """The URL of an empty company database, removed afterwards."""
    from core.db import dispose_engines

    if backend == "sqlite":
        path = WORKDIR / f"scale-{n}.db"
        for stale in path.parent.glob(f"{path.name}*"):
            stale.unlink()
        try:
            yield f"sqlite:///{path}"
        finally:
            dispose_engines()
            for leftover in path.parent.glob(f"{path.name}*"):  # -wal, -shm: a million companies are gigabytes
                leftover.unlink()
        return
    import psycopg

    name = f"bulkai_bench_scale_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        dispose_engines()
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _seed(db: Any, n: int) -> list[str]:
    """Insert ``n`` companies, every ``EXCLUDE_EVERY``-th in ``EXCLUDED_COUNTRY``; return the other countries."""
    from sqlalchemy import Table, insert, text

    from core.schema import Company, CompanyStatus, EnrichmentStatus
    from core.synthetic import generate_companies

    engine = db.get_engine()  # migrates the new database
    now = datetime.now(UTC)
    countries: set[str] = set()
    index = 0
    with engine.begin() as connection:
        for piece, start in enumerate(range(0, n, GENERATE_PIECE)):
            rows: list[dict[str, Any]] = []
            for company in generate_companies(min(GENERATE_PIECE, n - start), seed=SEED + piece):
                excluded = index % EXCLUDE_EVERY == 0
                index += 1
                if not excluded:
                    countries.add(company.country)
                rows.append(
                    {
                        "name": company.name,
                        "website": company.website,
                        "industry": company.industry,
                        "nace_code": company.nace_code,
                        "country": EXCLUDED_COUNTRY if excluded else company.country,
                        "activity_description": company.activity_description,
                        "ownership_type": company.ownership_type,
                        "priority": company.priority,
                        "status": CompanyStatus.ACTIVE,
                        "enrichment_status": EnrichmentStatus.NEVER,
                        "needs_review": False,
                        "created_at": now,
                        "updated_at": now,
                    }
                )
            for part in range(0, len(rows), INSERT_CHUNK):
                connection.execute(insert(cast(Table, Company.__table__)), rows[part : part + INSERT_CHUNK])
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            connection.execute(text("ANALYZE"))
            connection.commit()
    return sorted(countries)


def _run_flow(
    db: Any, block: str, selection: dict[str, Any], provider: str, n: int
) -> tuple[dict[str, Any], float, float, float]:
    """Run the action in a subprocess; return its summary, its wall seconds, the wall time (``time.time()``) its
    first outcome row was seen, and its peak RSS in MB."""
    from prefect.settings import PREFECT_API_URL
    from sqlalchemy import select

    from core.schema import BulkActionOutcome

    code = (
        "import dataclasses, json\n"
        "import bench.instant_provider  # registers the instant provider's block type in this process\n"
        "from flows.engine import BulkActionSummary\n"
        "from flows.generate_embeddings import generate_embeddings\n"
        f"summary = generate_embeddings(selection={selection!r}, provider={provider!r}, database={block!r}, "
        f"max_companies={MAX_COMPANIES}, created_by='bench-scale')\n"
        "if not isinstance(summary, BulkActionSummary):\n"
        "    raise SystemExit(f'the flow returned {summary!r}')\n"
        "with open('/proc/self/status') as status:  # this process's own peak RSS (see _run_flow)\n"
        "    hwm = next(int(line.split()[1]) for line in status if line.startswith('VmHWM:'))\n"
        f"print({MARKER!r} + json.dumps(dataclasses.asdict(summary) | {{'vm_hwm_kb': hwm}}), flush=True)\n"
    )
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value()), "PYTHONPATH": str(REPO_ROOT)}
    stdout_path, stderr_path = WORKDIR / f"{block}.out", WORKDIR / f"{block}.err"
    timeout = 600 + n * 0.005  # 5 ms a company: ten times the target
    with stdout_path.open("wb") as stdout, stderr_path.open("wb") as stderr:
        started = time.perf_counter()
        child = subprocess.Popen(
            [sys.executable, "-c", code], env=env, cwd=REPO_ROOT, stdout=stdout, stderr=stderr, start_new_session=True
        )
        seen_at = 0.0
        try:
            while True:
                pid, status, usage = os.wait4(child.pid, os.WNOHANG)
                if pid:
                    break
                if time.perf_counter() - started > timeout:
                    raise TimeoutError(f"the flow run did not finish in {timeout:.0f} s")
                if not seen_at:
                    with db.read_session() as session:
                        if session.scalar(select(BulkActionOutcome.position).limit(1)) is not None:
                            seen_at = time.time()
                time.sleep(POLL_SECONDS)
        except BaseException:
            os.killpg(child.pid, signal.SIGKILL)
            with suppress(ChildProcessError):
                os.waitpid(child.pid, 0)
            child.returncode = -signal.SIGKILL
            raise
        process_seconds = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4: Popen must not wait for it again
    output = stdout_path.read_text(errors="replace")
    lines = [line for line in output.splitlines() if line.startswith(MARKER)]
    if child.returncode != 0 or not lines:
        errors = stderr_path.read_text(errors="replace")
        print(errors[-3000:], file=sys.stderr)
        last = ([line for line in errors.splitlines() if line.strip()] or ["no output"])[-1]
        raise RuntimeError(f"the flow-run process exited {child.returncode}: {last} (all of it: {stderr_path})")
    if not seen_at:
        raise RuntimeError("the outcome rows were never seen while the flow ran")
    summary: dict[str, Any] = json.loads(lines[-1][len(MARKER) :])
    # Not ``ru_maxrss``: the child starts in a copy of this process's address space (fork or vfork), and on exec
    # Linux keeps that address space's peak RSS in the child's ru_maxrss, so wait4 reports max(this process's
    # RSS at the spawn, the child's own peak).  Measured at 20,000 companies: ru_maxrss 261 MB (this process's
    # peak after seeding; a 5,000-company run after it read 261 MB too) while /proc/<pid>/status sampled every
    # 0.5 s never showed the flow-run process above 154 MB.  VmHWM is the peak of the child's own address space.
    own, waited = summary["vm_hwm_kb"] / 1024, usage.ru_maxrss / 1024  # both in KB
    print(f"scale: peak RSS {own:.0f} MB (wait4's ru_maxrss, this process's peak included: {waited:.0f} MB)")
    return summary, process_seconds, seen_at, summary["vm_hwm_kb"] / 1024.0


# --- reading back what happened --------------------------------------------------------------------------------


def _flow_run_of(db: Any, bulk_action_id: int) -> str:
    from core.schema import BulkAction

    with db.read_session() as session:
        record = session.get(BulkAction, bulk_action_id)
        if record is None or not record.flow_run_id:
            raise RuntimeError(f"bulk action {bulk_action_id} has no flow run")
        return str(record.flow_run_id)


def _flow_run_start(flow_run_id: str) -> float:
    """The flow run's start (its Running state's timestamp) as ``time.time()`` seconds."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(UUID(flow_run_id))
    if flow_run.start_time is None:
        raise RuntimeError(f"flow run {flow_run_id} has no start time")
    return flow_run.start_time.timestamp()


def _recount_seconds(db: Any, bulk_action_id: int) -> float:
    from core.store import error_summary, outcome_counts

    with db.read_session() as session:
        started = time.perf_counter()
        outcome_counts(session, bulk_action_id)
        error_summary(session, bulk_action_id)
        return time.perf_counter() - started


def _task_runs(flow_run_id: str) -> int:
    """Task runs of the flow run, counted by the server (reading 5,000 of them back would take a while)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    flow_runs = FlowRunFilter(id=FlowRunFilterId(any_=[UUID(flow_run_id)]))
    with get_client(sync_client=True) as client:
        response = client.request(
            "POST",
            "/task_runs/count",  # a server route the 3.9.1 client has no method for
            json={"flow_runs": flow_runs.model_dump(mode="json", exclude_unset=True)},
        )
        response.raise_for_status()
        return int(response.json())


def _settled_task_runs(flow_run_id: str, timeout: float = 300.0) -> int:
    """The count once the server has recorded every task run: two counts a recorder flush apart agree."""
    from deployments.server_settings import recorder_flush_seconds

    wait_for_quiet_server()
    deadline = time.monotonic() + timeout
    seen = _task_runs(flow_run_id)
    while time.monotonic() < deadline:
        time.sleep(recorder_flush_seconds() + 0.5)
        now = _task_runs(flow_run_id)
        if now == seen:
            return now
        seen = now
    raise RuntimeError("the server's count of task runs did not settle")
