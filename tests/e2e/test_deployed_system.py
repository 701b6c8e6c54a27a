"""Issue #4 end to end: the system deployed the way a user deploys it, on a real ``prefect server start``.

One module-scoped fixture builds everything in a temporary home, with the commands a user types:

* ``prefect server start`` on a fresh PostgreSQL database (its scheduler loop made fast), and a company database
  on another fresh PostgreSQL database, seeded with synthetic companies;
* ``make deploy``'s commands against that server: ``prefect work-pool create bulkai-process --type process``,
  ``python -m deployments.register_blocks`` (with ``BULKAI_DATABASE_URL``), ``python -m
  deployments.provision_limits`` and ``prefect --no-prompt deploy --all`` from the repository root;
* provider blocks pointing at the provider sandbox (a few lines of Python, as the README says for paid
  providers), and two ``prefect worker start --pool bulkai-process`` processes.

The tests drive it only from outside, as users and schedules do (``prefect deployment run``, ``prefect deployment
schedule create``), and check what happened where it lands: flow runs through the server's REST API, rows in the
company database, requests at the sandbox.  Every wait polls a condition against a deadline.

What the tests show: the deployment is what ``prefect.yaml`` says (pool, schedules, overlap rules, limits, the
database block); the three scheduled deployments complete on a worker, enrichment-cron through a child
enrich-companies flow run, and the dead job it leaves is flagged by dead-job-review; a schedule fires by itself;
two workers running one provider's actions at once stay within its limits as the provider counts them; and a
bulk action whose worker is SIGKILLed resumes on the other worker (``bulk_action_id`` + ``takeover``) without
calling the provider again for the companies it had finished.

The deployments' own cron schedules are checked as deployed and then paused, and the pool stays paused until
then: the wall clock must not fire one mid-test (with ``CANCEL_NEW``, a nightly cleanup firing would cancel the
test's own cleanup run).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import numpy as np
import psycopg
import pytest
from pydantic import SecretStr
from sqlalchemy import func, select, update

from blocks.database import CompanyDatabase
from core.db import REPO_ROOT, get_engine
from core.schema import (
    BulkAction,
    BulkActionOutcome,
    BulkActionStatus,
    Company,
    CompanyEmbedding,
    CompanyScore,
    DeadJob,
    DeadJobStatus,
    EnrichmentStatus,
    OutcomeStatus,
)
from core.store import create_bulk_action
from core.synthetic import seed_companies
from deployments.definitions import read_deployments
from deployments.provision_limits import DEFAULT_CONCURRENCY, DEFAULT_WINDOW_REQUESTS
from deployments.server_settings import with_server_settings
from sandbox.server import SandboxServer

# Setting up takes 30-60 s of the first test's budget on a 2-core machine.
pytestmark = pytest.mark.timeout(480)

T = TypeVar("T")

POSTGRES_ADMIN_URL = os.environ.get("BULKAI_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
_PREFECT_SCRIPT = Path(sys.executable).with_name("prefect")
PREFECT = [str(_PREFECT_SCRIPT)] if _PREFECT_SCRIPT.exists() else [sys.executable, "-m", "prefect"]
POOL = "bulkai-process"
WORKERS = ("e2e-worker-a", "e2e-worker-b")
FINAL_STATES = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
UUID_LINE = re.compile(r"UUID: ([0-9a-f-]{36})")
BATCH_NAME = re.compile(r"-batch-(\d+)\b")  # process-batch task runs are named "<action>-batch-<index> ..."

#: a parallel-enrichment block with a limit of 1 batch in flight, so a run can be killed between batches
SERIAL_TAG = "parallel-e2e-serial"
#: a GROQ block of its own on the sandbox: GROQ's 2 batches in flight, and a plan of 150 requests a minute, which
#: covers the test's 120 calls (at the default 30 a minute they would take four)
GROQ_TAG, GROQ_SLOTS, GROQ_REQUESTS_PER_MINUTE = "groq-e2e", DEFAULT_CONCURRENCY["groq"], 150
FLOW_RUN_TIMEOUT = 180.0

# The synthetic companies and what each test uses them for (no test depends on another's companies).
N_COMPANIES = 68
CRON = slice(0, 4)  # never enriched: what enrichment-cron finds due (every other company was enriched yesterday)
SCORE_A, SCORE_B = slice(4, 10), slice(10, 16)  # two scoring actions of 2 batches each
CRASH = slice(16, 56)  # one enrichment action of 8 batches
EMBED = slice(56, 68)  # one local embedding action of 2 batches

SANDBOX_BLOCKS = """\
import json
import sys

from prefect.client.orchestration import get_client
from pydantic import SecretStr

from blocks.enrichment import ParallelEnrichment
from blocks.llm import GroqLLM

url, settings = sys.argv[1], json.loads(sys.argv[2])
parallel = dict(
    api_key=SecretStr("par-e2e-secret-0123456789"), base_url=url, poll_slice_seconds=5, request_timeout_seconds=10
)
ParallelEnrichment(**parallel).save("default", overwrite=True)
ParallelEnrichment(**parallel, concurrency_tag=settings["serial_tag"]).save("serial", overwrite=True)
GroqLLM(
    api_key=SecretStr("gsk-e2e-secret-0123456789"),
    base_url=url + "/openai/v1",
    requests_per_minute=settings["groq_requests"],
    concurrency_tag=settings["groq_tag"],
).save("sandbox", overwrite=True)
with get_client(sync_client=True) as client:  # only these names: `make limits` runs side by side
    client.upsert_global_concurrency_limit_by_name("tag:" + settings["serial_tag"], 1)
    client.upsert_global_concurrency_limit_by_name("tag:" + settings["groq_tag"], settings["groq_slots"])
    client.upsert_global_concurrency_limit_by_name("window:" + settings["groq_tag"], settings["groq_requests"])
"""


# --- processes ----------------------------------------------------------------------------------------------


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a live process, from /proc."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()
    return fields[0], int(fields[1])


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _stat(int(entry))) is not None:
            children.setdefault(stat[1], []).append(int(entry))
    found: list[int] = []
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def is_gone(pid: int) -> bool:
    stat = _stat(pid)
    return stat is None or stat[0] in ("Z", "X")


def kill_tree(process: subprocess.Popen[bytes]) -> list[int]:
    """SIGKILL a process started in a session of its own, its group and every descendant; returns their pids.

    The group is stopped first so nothing new is forked while the tree is read; the descendants matter because a
    worker starts each flow run in a session of its own, which a signal to the worker's group never reaches.
    """
    own_group = os.getpgrp()
    try:
        if process.pid != own_group:
            os.killpg(process.pid, signal.SIGSTOP)
    except ProcessLookupError:
        pass
    victims = [process.pid, *descendants(process.pid)]
    for pid in victims:
        try:
            if os.getpgid(pid) == pid and pid != own_group:
                os.killpg(pid, signal.SIGKILL)
            else:
                os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        pass
    return victims


class Processes:
    """Long-running subprocesses (server, workers), each in a session of its own and logging to a file."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.running: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        with (self.log_dir / f"{name}.log").open("ab") as log:
            process = subprocess.Popen(
                args,
                cwd=REPO_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.running[name] = process
        return process

    def log(self, name: str) -> str:
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def tail(self, name: str, lines: int = 30) -> str:
        return "\n".join(self.log(name).splitlines()[-lines:])

    def kill(self, name: str) -> list[int]:
        return kill_tree(self.running.pop(name))

    def kill_all(self) -> None:
        for name in sorted(self.running, key=lambda n: n == "server"):  # workers first, then the server
            self.kill(name)


def run_cli(args: list[str], env: dict[str, str], timeout: float = 240.0) -> str:
    """Run a command to completion; its output, or an assertion error that shows it."""
    result = subprocess.run(
        args,
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise AssertionError(f"`{' '.join(args)}` exited {result.returncode}:\n{result.stdout[-5000:]}")
    return result.stdout


def wait_for(condition: Callable[[], T | None], timeout: float, what: str, interval: float = 0.2) -> T:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


# --- databases ----------------------------------------------------------------------------------------------


def create_databases(names: list[str]) -> None:
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        for name in names:
            admin.execute(f'CREATE DATABASE "{name}"')


def drop_databases(names: list[str]) -> None:
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        for name in names:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def seed(db: CompanyDatabase) -> list[int]:
    """Synthetic companies; all but the CRON ones count as enriched yesterday, so the cron finds exactly those."""
    with db.session() as session:
        ids = seed_companies(session, N_COMPANIES, seed=2024, duplicate_fraction=0.0)
        session.execute(
            update(Company)
            .where(Company.id.in_(ids[CRON.stop :]))
            .values(enrichment_status=EnrichmentStatus.ENRICHED, enriched_at=datetime.now(UTC) - timedelta(days=1))
        )
    return ids


def websites(db: CompanyDatabase, ids: list[int]) -> dict[int, str]:
    with db.session() as session:
        found = dict(session.execute(select(Company.id, Company.website).where(Company.id.in_(ids))).tuples().all())
    assert len(set(found.values())) == len(ids) and all(found.values()), "the test needs one website per company"
    return {cid: str(site) for cid, site in found.items()}


def bulk_action_of(db: CompanyDatabase, flow_run_id: str) -> BulkAction | None:
    with db.session() as session:
        record = session.scalars(select(BulkAction).where(BulkAction.flow_run_id == flow_run_id)).first()
        if record is not None:
            session.expunge(record)
        return record


def get_bulk_action(db: CompanyDatabase, bulk_action_id: int) -> BulkAction:
    with db.session() as session:
        record = session.get(BulkAction, bulk_action_id)
        assert record is not None, f"bulk action {bulk_action_id} is gone"
        session.expunge(record)
        return record


def outcomes(db: CompanyDatabase, bulk_action_id: int) -> dict[int, tuple[OutcomeStatus, str | None]]:
    with db.session() as session:
        rows = session.execute(
            select(BulkActionOutcome.company_id, BulkActionOutcome.status, BulkActionOutcome.detail).where(
                BulkActionOutcome.bulk_action_id == bulk_action_id
            )
        ).all()
    return {cid: (status, detail) for cid, status, detail in rows}


def finished_action(db: CompanyDatabase, company_id: int, days_ago: float) -> int:
    """A completed bulk action that finished ``days_ago`` days ago (for the cleanup to delete or keep)."""
    with db.session() as session:
        record = create_bulk_action(session, action="generate_embeddings", company_ids=[company_id], created_by="e2e")
        record.status = BulkActionStatus.COMPLETED
        record.finished_at = datetime.now(UTC) - timedelta(days=days_ago)
        return record.id


def action_exists(db: CompanyDatabase, bulk_action_id: int) -> bool:
    with db.session() as session:
        return session.get(BulkAction, bulk_action_id) is not None


# --- the deployed system ------------------------------------------------------------------------------------


@dataclass
class Deployed:
    api_url: str
    env: dict[str, str]
    processes: Processes
    http: httpx.Client
    sandbox: SandboxServer
    db: CompanyDatabase
    company_url: str
    ids: list[int]
    deployed: dict[str, dict[str, Any]]  # name -> the deployment as `prefect deploy` left it

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(method, path, **kwargs)
        response.raise_for_status()
        return response.json() if response.content else None

    def companies(self, part: slice) -> list[int]:
        return self.ids[part]

    def deployment_run(self, name: str, **parameters: Any) -> str:
        """``prefect deployment run NAME --param k=v ...``; returns the flow run id it printed."""
        args = [*PREFECT, "deployment", "run", name]
        for key, value in parameters.items():
            args += ["--param", f"{key}={json.dumps(value)}"]
        output = run_cli(args, self.env)
        match = UUID_LINE.search(output)
        assert match is not None, output
        return match.group(1)

    def flow_run(self, flow_run_id: str) -> dict[str, Any]:
        run: dict[str, Any] = self.api("GET", f"/flow_runs/{flow_run_id}")
        return run

    def flow_runs(self, **flow_run_filter: Any) -> list[dict[str, Any]]:
        runs: list[dict[str, Any]] = self.api(
            "POST", "/flow_runs/filter", json={"flow_runs": flow_run_filter, "limit": 200}
        )
        return runs

    def explain(self, run: dict[str, Any]) -> str:
        logs = self.api(
            "POST",
            "/logs/filter",
            json={"logs": {"flow_run_id": {"any_": [run["id"]]}}, "sort": "TIMESTAMP_ASC", "limit": 200},
        )
        lines = "\n".join(f"  {log['level']:>2} {log['message'][:400]}" for log in logs[-40:])
        workers = "\n".join(f"--- {name} ---\n{self.processes.tail(name, 15)}" for name in WORKERS)
        message = (run.get("state") or {}).get("message")
        return f"flow run {run['name']} ({run['id']}) is {run['state_type']}: {message}\n{lines}\n{workers}"

    def wait_for_final(self, flow_run_id: str, timeout: float = FLOW_RUN_TIMEOUT) -> dict[str, Any]:
        def final() -> dict[str, Any] | None:
            run = self.flow_run(flow_run_id)
            return run if run["state_type"] in FINAL_STATES else None

        try:
            return wait_for(final, timeout, f"flow run {flow_run_id} to finish", interval=0.5)
        except AssertionError as timed_out:
            raise AssertionError(f"{timed_out}\n{self.explain(self.flow_run(flow_run_id))}") from None

    def expect_completed(self, flow_run_id: str, timeout: float = FLOW_RUN_TIMEOUT) -> dict[str, Any]:
        run = self.wait_for_final(flow_run_id, timeout)
        assert run["state_type"] == "COMPLETED", self.explain(run)
        return run

    def flow_name(self, run: dict[str, Any]) -> str:
        return str(self.api("GET", f"/flows/{run['flow_id']}")["name"])

    def artifact(self, flow_run_id: str, key: str) -> Any:
        found = self.api(
            "POST",
            "/artifacts/filter",
            json={"artifacts": {"key": {"any_": [key]}, "flow_run_id": {"any_": [flow_run_id]}}},
        )
        assert found, f"flow run {flow_run_id} has no artifact {key!r}"
        data = found[-1]["data"]
        return json.loads(data) if isinstance(data, str) and data[:1] in "[{" else data

    def limit(self, name: str) -> dict[str, Any]:
        limit: dict[str, Any] = self.api("GET", f"/v2/concurrency_limits/{name}")
        return limit

    def completed_batches(self, flow_run_id: str) -> set[int]:
        task_runs = self.api(
            "POST",
            "/task_runs/filter",
            json={
                "flow_runs": {"id": {"any_": [flow_run_id]}},
                "task_runs": {"state": {"type": {"any_": ["COMPLETED"]}}},
                "limit": 200,
            },
        )
        return {int(match.group(1)) for t in task_runs if (match := BATCH_NAME.search(t["name"]))}

    def worker_of(self, flow_run_id: str) -> str | None:
        """The worker that started the flow run, from the workers' logs (both may try; one is turned away)."""
        ran = [
            name
            for name in WORKERS
            if f"submitting flow run '{flow_run_id}'" in (log := self.processes.log(name))
            and f"Aborted submission of flow run '{flow_run_id}'" not in log
        ]
        assert len(ran) <= 1, ran
        return ran[0] if ran else None

    def workers_online(self) -> set[str]:
        workers = self.api("POST", f"/work_pools/{POOL}/workers/filter", json={})
        return {w["name"] for w in workers if w["status"] == "ONLINE"}


def user_env(api_url: str, home: Path) -> dict[str, str]:
    """What `make` exports, pointed at the test's server and temporary home (none of the harness's settings)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "BULKAI_"))}
    # Every command and flow run is a new Python process importing Prefect: keep their bytecode (in the temporary
    # home, never in the checkout) so each compiles it once, not once per process.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(
        PYTHONPYCACHEPREFIX=str(home / "pycache"),
        PREFECT_API_URL=api_url,
        PREFECT_HOME=str(home / "prefect"),
        BULKAI_HOME=str(home / "bulkai"),
        PREFECT_RESULTS_LOCAL_STORAGE_PATH=str(home / "results"),
        BULKAI_REPO=str(REPO_ROOT),
        PYTHONPATH=str(REPO_ROOT),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        DO_NOT_TRACK="1",
        HF_HUB_OFFLINE="1",
        COLUMNS="200",
    )
    return env


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    home = tmp_path_factory.mktemp("e2e")
    (home / "logs").mkdir()
    suffix = uuid.uuid4().hex[:10]
    prefect_db, company_db = f"bulkai_e2e_{suffix}", f"bulkai_e2e_{suffix}_companies"
    postgres = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    company_url = postgres.replace("postgresql://", "postgresql+psycopg://", 1) + f"/{company_db}"
    processes = Processes(home / "logs")
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    env = user_env(api_url, home)

    with ExitStack() as stack:
        stack.callback(drop_databases, [prefect_db, company_db])
        create_databases([prefect_db, company_db])
        db = CompanyDatabase(url=SecretStr(company_url))
        stack.callback(lambda: get_engine(company_url).dispose())  # this process's pool, before the drop
        sandbox = stack.enter_context(SandboxServer(port=0, config={"parallel": {"job_duration_s": 0.3}}))
        stack.callback(processes.kill_all)

        server_env = {
            **with_server_settings({**env}),  # the settings `make server` gives a bulk-action server
            "PREFECT_API_DATABASE_CONNECTION_URL": postgres.replace("postgresql://", "postgresql+asyncpg://", 1)
            + f"/{prefect_db}",
            "PREFECT_UI_ENABLED": "false",
            # schedules are turned into runs within a second or two, and only a couple of runs ahead
            "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "1",
            "PREFECT_SERVER_SERVICES_SCHEDULER_RECENT_DEPLOYMENTS_LOOP_SECONDS": "1",
            "PREFECT_SERVER_SERVICES_SCHEDULER_MIN_RUNS": "1",
            "PREFECT_SERVER_SERVICES_SCHEDULER_MAX_RUNS": "2",
        }
        del server_env["PREFECT_API_URL"]
        server = processes.start(
            "server", [*PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)], server_env
        )
        ids = seed(db)  # while the server starts
        http = stack.enter_context(httpx.Client(base_url=api_url, timeout=30.0))

        def server_up() -> bool:
            if server.poll() is not None:
                raise AssertionError(f"the Prefect server exited:\n{processes.tail('server', 60)}")
            try:
                return http.get("/health").status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(server_up, 180, "the Prefect server", interval=0.5)

        # `make deploy`: blocks, limits, the work pool, then `prefect deploy --all` (independent steps side by
        # side).  The workers start as soon as the pool exists; the pool stays paused until the deployments' cron
        # schedules are paused, so no worker can pick up a run the wall clock scheduled.
        worker_env = {**env, "PREFECT_WORKER_QUERY_SECONDS": "1", "PREFECT_WORKER_HEARTBEAT_SECONDS": "5"}

        def pool_workers_and_deploy() -> None:
            run_cli([*PREFECT, "work-pool", "create", POOL, "--type", "process"], env)
            http.patch(f"/work_pools/{POOL}", json={"is_paused": True}).raise_for_status()
            for name in WORKERS:
                # --limit 1: a worker busy with a run leaves the next one to the other worker
                command = [*PREFECT, "worker", "start", "--pool", POOL, "--name", name, "--limit", "1"]
                processes.start(name, command, worker_env)
            run_cli([*PREFECT, "--no-prompt", "deploy", "--all"], env)

        def blocks() -> None:
            run_cli([sys.executable, "-m", "deployments.register_blocks"], {**env, "BULKAI_DATABASE_URL": company_url})
            settings = {
                "serial_tag": SERIAL_TAG,
                "groq_tag": GROQ_TAG,
                "groq_slots": GROQ_SLOTS,
                "groq_requests": GROQ_REQUESTS_PER_MINUTE,
            }
            run_cli([sys.executable, "-c", SANDBOX_BLOCKS, sandbox.url, json.dumps(settings)], env)

        def limits() -> None:
            run_cli([sys.executable, "-m", "deployments.provision_limits"], env)

        with ThreadPoolExecutor(3) as pool:
            for step in [pool.submit(step) for step in (pool_workers_and_deploy, blocks, limits)]:
                step.result()

        deployed = {d["name"]: d for d in http.post("/deployments/filter", json={}).raise_for_status().json()}
        for deployment in deployed.values():
            for schedule in deployment["schedules"]:
                path = f"/deployments/{deployment['id']}/schedules/{schedule['id']}"
                http.patch(path, json={"active": False}).raise_for_status()
        http.patch(f"/work_pools/{POOL}", json={"is_paused": False}).raise_for_status()

        system = Deployed(api_url, env, processes, http, sandbox, db, company_url, ids, deployed)

        def workers_online() -> bool:
            for name in WORKERS:
                if processes.running[name].poll() is not None:
                    raise AssertionError(f"worker {name} exited:\n{processes.tail(name)}")
            return system.workers_online() == set(WORKERS)

        wait_for(workers_online, 90, "both workers to come online", interval=0.5)
        yield system


# --- the tests ----------------------------------------------------------------------------------------------


def test_make_deploy_puts_every_deployment_on_the_pool(system: Deployed) -> None:
    specs = {spec.name: spec for spec in read_deployments()}
    assert set(system.deployed) == set(specs)
    for name, spec in specs.items():
        deployment = system.deployed[name]
        assert deployment["work_pool_name"] == POOL and deployment["entrypoint"] == spec.entrypoint, name
        assert deployment["pull_steps"] == [
            {"prefect.deployments.steps.set_working_directory": {"directory": str(REPO_ROOT)}}
        ]
        assert deployment["enforce_parameter_schema"] is True
        crons = [
            (s["schedule"].get("cron"), s["schedule"].get("timezone"), s["active"]) for s in deployment["schedules"]
        ]
        assert crons == [(s.cron, s.timezone, True) for s in spec.schedules], name
        if spec.schedules:  # the scheduled ones never overlap themselves
            assert deployment["global_concurrency_limit"]["limit"] == 1
            assert deployment["concurrency_options"]["collision_strategy"] == "CANCEL_NEW"
    assert {"enrichment-cron", "dead-job-review", "cleanup"} <= {n for n, s in specs.items() if s.schedules}

    assert system.api("GET", f"/work_pools/{POOL}")["type"] == "process"
    assert system.workers_online() == set(WORKERS)
    for tag, limit in DEFAULT_CONCURRENCY.items():
        assert system.limit(f"tag:{tag}")["limit"] == limit
    for tag, requests in DEFAULT_WINDOW_REQUESTS.items():
        assert system.limit(f"window:{tag}")["limit"] == requests
    database = system.api(
        "GET", "/block_types/slug/company-database/block_documents/name/default", params={"include_secrets": True}
    )
    assert database["data"]["url"] == system.company_url


def test_the_scheduled_deployments_run_on_a_worker(system: Deployed) -> None:
    db = system.db
    due = system.companies(CRON)
    poison = due[-1]
    site = websites(db, due)[poison]
    old, recent = finished_action(db, due[0], days_ago=30), finished_action(db, due[0], days_ago=1)
    creations_before = _accepted(system.sandbox, "parallel", "create_run")
    system.sandbox.configure("parallel", faults=[{"kind": "fail_run", "match": site, "endpoint": "create_run"}])
    try:
        with ThreadPoolExecutor(2) as pool:
            cron_id, cleanup_id = pool.map(
                lambda args: system.deployment_run(args[0], **args[1]),
                [("enrichment-cron/enrichment-cron", {"limit": 10}), ("cleanup/cleanup", {"retention_days": 14})],
            )
        system.expect_completed(cron_id)
        system.expect_completed(cleanup_id)
    finally:
        system.sandbox.configure("parallel", faults=[])

    # enrichment-cron found the four due companies and enriched them in a child enrich-companies flow run
    children = system.flow_runs(parent_flow_run_id={"any_": [cron_id]})
    assert [system.flow_name(c) for c in children] == ["enrich-companies"]
    child = children[0]
    assert child["state_type"] == "COMPLETED", system.explain(child)
    record = bulk_action_of(db, child["id"])
    assert record is not None
    assert (record.action, record.created_by, record.status) == (
        "enrich_companies",
        "enrichment-cron",
        BulkActionStatus.COMPLETED,
    )
    assert (record.total, record.succeeded, record.failed) == (4, 3, 1)
    assert _accepted(system.sandbox, "parallel", "create_run") - creations_before == 4
    with db.session() as session:
        statuses = dict(
            session.execute(select(Company.id, Company.enrichment_status).where(Company.id.in_(due))).tuples().all()
        )
        [dead] = session.scalars(select(DeadJob).where(DeadJob.bulk_action_id == record.id)).all()
        assert (dead.company_id, dead.retryable, dead.status) == (poison, False, DeadJobStatus.OPEN)
        dead_job_id = dead.id
    assert statuses == {cid: EnrichmentStatus.ENRICHED for cid in due[:-1]} | {
        poison: EnrichmentStatus.FAILED_PERMANENT
    }
    assert "4 companies due" in system.artifact(cron_id, "enrichment-cron")

    # cleanup deleted the action past its retention and kept the recent one
    assert not action_exists(db, old) and action_exists(db, recent)
    assert "| bulk actions deleted | 1 |" in system.artifact(cleanup_id, "cleanup")

    # dead-job review hands the permanent failure the cron left to a person
    review_id = system.deployment_run("dead-job-review/dead-job-review", max_requeues=3)
    system.expect_completed(review_id)
    with db.session() as session:
        job = session.get(DeadJob, dead_job_id)
        company = session.get(Company, poison)
        assert job is not None and job.status is DeadJobStatus.NEEDS_REVIEW
        assert company is not None and company.needs_review and "enrich_companies" in (company.review_reason or "")
    assert "| enrich_companies |" in system.artifact(review_id, "dead-job-review")


def test_a_schedule_fires_by_itself(system: Deployed) -> None:
    db = system.db
    stale = finished_action(db, system.ids[0], days_ago=30)
    run_cli([*PREFECT, "deployment", "schedule", "create", "cleanup/cleanup", "--interval", "5"], system.env)
    deployment = system.api("GET", "/deployments/name/cleanup/cleanup")
    [schedule_id] = [s["id"] for s in deployment["schedules"] if "interval" in s["schedule"]]
    try:

        def fired() -> dict[str, Any] | None:
            runs = [
                r
                for r in system.flow_runs(deployment_id={"any_": [deployment["id"]]})
                if (r.get("created_by") or {}).get("id") == schedule_id
            ]
            for run in runs:
                assert run["state_type"] not in ("FAILED", "CRASHED"), system.explain(run)
            return next((r for r in runs if r["state_type"] == "COMPLETED"), None)

        run = wait_for(fired, FLOW_RUN_TIMEOUT, "a run created by the interval schedule to complete", interval=0.5)
    finally:
        system.api("DELETE", f"/deployments/{deployment['id']}/schedules/{schedule_id}")

        def quiet() -> bool:  # the runs it had started finish before the next test
            active = ("SCHEDULED", "PENDING", "RUNNING", "CANCELLING")
            return not system.flow_runs(deployment_id={"any_": [deployment["id"]]}, state={"type": {"any_": active}})

        wait_for(quiet, FLOW_RUN_TIMEOUT, "the scheduled cleanup runs to finish", interval=0.5)

    assert run["auto_scheduled"] is True and run["created_by"]["type"] == "SCHEDULE"
    assert not action_exists(db, stale)  # the scheduled run did the cleanup's work (default retention, 7 days)


def test_two_workers_hold_one_providers_limits_together(system: Deployed) -> None:
    slots = system.limit(f"tag:{GROQ_TAG}")["limit"]
    requests = system.limit(f"window:{GROQ_TAG}")["limit"]
    assert (slots, requests) == (GROQ_SLOTS, GROQ_REQUESTS_PER_MINUTE)
    # The sandbox enforces exactly what Prefect was given: 429 past `slots` requests in flight, or past `requests`
    # in any 60 s.
    system.sandbox.reset()
    system.sandbox.configure("groq", max_concurrency=slots, requests_per_minute=requests, latency_ms=60)
    groups = [system.companies(SCORE_A), system.companies(SCORE_B)]
    # each action wants 2 batches in flight: together twice what the limit allows
    with ThreadPoolExecutor(2) as pool:
        run_ids = list(
            pool.map(
                lambda ids: system.deployment_run(
                    "score-llm-adoption/score-llm-adoption", company_ids=ids, provider="groq-llm/sandbox"
                ),
                groups,
            )
        )
    runs = [system.expect_completed(run_id) for run_id in run_ids]

    assert {system.worker_of(run_id) for run_id in run_ids} == set(WORKERS), "each worker should run one action"
    starts = [datetime.fromisoformat(r["start_time"]) for r in runs]
    ends = [datetime.fromisoformat(r["end_time"]) for r in runs]
    assert max(starts) < min(ends), "the two actions should have run at the same time"

    stats = system.sandbox.stats(log=False)["providers"]["groq"]
    assert stats["rate_limited"] == 0, stats
    assert stats["peak_concurrency"] <= slots, stats
    assert stats["rate_window_s"] == 60 and stats["peak_window_60s"] <= requests, stats
    assert stats["accepted"] == 10 * 12, stats  # ten criteria per company, each called once

    for run_id, ids in zip(run_ids, groups, strict=True):
        record = bulk_action_of(system.db, run_id)
        assert record is not None and record.status is BulkActionStatus.COMPLETED
        assert (record.total, record.succeeded, record.failed) == (6, 6, 0)
        with system.db.session() as session:
            scored = session.scalar(
                select(func.count()).where(CompanyScore.company_id.in_(ids), CompanyScore.provider == "groq")
            )
        assert scored == 6 * 11  # ten criteria and the total
    assert system.limit(f"tag:{GROQ_TAG}")["active_slots"] == 0


def test_a_killed_workers_bulk_action_resumes_from_its_checkpoints(system: Deployed) -> None:
    db = system.db
    ids = system.companies(CRASH)
    site = websites(db, ids)
    system.sandbox.configure("parallel", job_duration_s=0.8, faults=[])
    provider = "parallel-enrichment/serial"  # one batch of 5 in flight at a time: 8 batches one after another
    first = system.deployment_run("enrich-companies/enrich-companies", company_ids=ids, provider=provider)

    def started() -> BulkAction | None:
        return bulk_action_of(db, first)

    record = wait_for(started, FLOW_RUN_TIMEOUT, "the bulk action record")

    def two_batches_done() -> bool:
        if system.flow_run(first)["state_type"] in FINAL_STATES:
            raise AssertionError(f"the run ended before it could be killed: {system.explain(system.flow_run(first))}")
        return sum(status is not OutcomeStatus.PENDING for status, _ in outcomes(db, record.id).values()) >= 10

    wait_for(two_batches_done, FLOW_RUN_TIMEOUT, "two batches' outcomes", interval=0.1)
    victim = system.worker_of(first)
    assert victim is not None
    flow_run_pid = int(str(system.flow_run(first)["infrastructure_pid"]).rsplit(":", 1)[-1])
    killed = system.processes.kill(victim)
    killed_at = time.time()
    assert flow_run_pid in killed
    wait_for(lambda: is_gone(flow_run_pid), 15, "the flow run's process to die")

    # the server records task-run states from events: give those the dead process had sent a moment to land
    checkpointed = wait_for(lambda: system.completed_batches(first), 30, "a completed batch of the killed run")
    paid_before = {cid for cid, (status, _) in outcomes(db, record.id).items() if status is OutcomeStatus.SUCCEEDED}
    assert 1 <= len(checkpointed) < 8, checkpointed
    assert system.flow_run(first)["state_type"] == "RUNNING"  # nobody told the server
    assert get_bulk_action(db, record.id).status is BulkActionStatus.RUNNING

    rerun = system.deployment_run(
        "enrich-companies/enrich-companies", bulk_action_id=record.id, takeover=True, provider=provider
    )
    system.expect_completed(rerun)

    survivor = next(name for name in WORKERS if name != victim)
    assert system.worker_of(rerun) == survivor
    final = get_bulk_action(db, record.id)
    assert final.status is BulkActionStatus.COMPLETED and final.flow_run_id == rerun
    assert (final.total, final.succeeded, final.failed) == (40, 40, 0)
    assert (final.parameters or {}).get("flow_runs") == [first, rerun]
    assert system.flow_run(first)["state_type"] == "CRASHED"  # taken over
    summary = {row["metric"]: row["value"] for row in system.artifact(rerun, f"enrich-companies-{record.id}-summary")}
    assert summary["batches_from_checkpoint"] >= len(checkpointed), summary

    # After the kill the provider saw nothing at all for the checkpointed batches' companies (no new run, no
    # poll of their old runs), and no company whose outcome was already recorded was researched again.
    after = [e for e in system.sandbox.requests(provider="parallel") if e["time"] >= killed_at]
    created_after = [e["match_key"] for e in after if e["endpoint"] == "create_run"]
    run_ids = {cid: (detail or "").removeprefix("run ") for cid, (_, detail) in outcomes(db, record.id).items()}
    for batch in checkpointed:
        for cid in ids[batch * 5 : batch * 5 + 5]:
            assert run_ids[cid], f"company {cid} of checkpointed batch {batch} has no run"
            assert not [k for k in created_after if site[cid] in k], f"company {cid} (batch {batch}) paid twice"
            assert not [e for e in after if run_ids[cid] in e["path"]], f"company {cid} (batch {batch}) polled"
    for cid in paid_before:
        assert not [k for k in created_after if site[cid] in k], f"company {cid} was researched twice"
    assert len(created_after) <= 40 - len(paid_before)
    assert system.limit(f"tag:{SERIAL_TAG}")["active_slots"] == 0


def _accepted(sandbox: SandboxServer, provider: str, endpoint: str) -> int:
    endpoints = sandbox.stats(log=False)["providers"][provider]["endpoints"]
    return int(endpoints.get(endpoint, {}).get("accepted", 0))


def _spawned_model_processes() -> set[int]:
    """Processes started by ``multiprocessing``'s spawn (the local model's workers) outside this test process."""
    found: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if b"multiprocessing.spawn" in cmdline and parent != os.getpid():
            found.add(int(entry.name))
    return found


def test_local_embeddings_run_in_model_processes_of_a_workers_flow_run(system: Deployed) -> None:
    from providers.local_minilm import MODEL_ID, MiniLMEncoder

    db = system.db
    ids = system.companies(EMBED)
    before = _spawned_model_processes()
    flow_run_id = system.deployment_run("generate-embeddings/generate-embeddings", company_ids=ids)
    system.expect_completed(flow_run_id)
    record = bulk_action_of(db, flow_run_id)
    assert record is not None
    assert (record.status, record.succeeded, record.failed) == (BulkActionStatus.COMPLETED, len(ids), 0)
    with db.session() as session:
        rows = session.scalars(select(CompanyEmbedding).where(CompanyEmbedding.company_id.in_(ids))).all()
        stored = {e.company_id: (e.text, np.frombuffer(e.vector, dtype=np.float32)) for e in rows}
        models = {e.model_id for e in rows}
    assert sorted(stored) == sorted(ids)
    # what the worker's model processes computed is what this process's encoder computes for the same texts
    texts = [stored[cid][0] for cid in ids]
    expected = MiniLMEncoder.load().encode(texts)
    got = np.stack([stored[cid][1] for cid in ids])
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert models == {MODEL_ID}
    # the flow run's model processes left with it
    wait_for(lambda: not (_spawned_model_processes() - before) or None, 30, "the model processes to exit")
