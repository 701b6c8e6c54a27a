"""The deployed system the end-to-end tests (and ``bench/bench_shards.py``) drive: built the way a user deploys it.

``deployed_system(home)`` builds everything in a temporary home, with the commands a user types:

* ``prefect server start`` on a fresh PostgreSQL database (its scheduler loop made fast), and a company database
  on another fresh PostgreSQL database, seeded with synthetic companies;
* ``make deploy``'s commands against that server: ``prefect work-pool create bulkai-process --type process``,
  ``python -m deployments.register_blocks`` (with ``BULKAI_DATABASE_URL``), ``python -m
  deployments.provision_limits``, ``prefect --no-prompt deploy --all`` from the repository root and ``python -m
  deployments.automations`` (the alerts' webhook pointed at the sandbox's ``/alerts`` receiver);
* provider blocks pointing at the provider sandbox (a few lines of Python, as the README says for paid
  providers), and two ``prefect worker start --pool bulkai-process`` processes.

The deployments' own cron schedules are paused once deployed, and the pool stays paused until then: the wall
clock must not fire one mid-test.  The sandbox's request log keeps only the first 200 characters of an
embeddings request's texts (its ``match_key``), so the sandbox app here also records every ``/v1/embeddings``
request's full list of texts (``Deployed.embedding_calls``), to count each company's text where it lands.
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
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psycopg
from pydantic import SecretStr
from sqlalchemy import select, update

from blocks.database import CompanyDatabase
from core.batching import BatchPlan
from core.catalog import get_action
from core.db import REPO_ROOT, get_engine
from core.schema import (
    BulkAction,
    BulkActionOutcome,
    BulkActionShard,
    BulkActionStatus,
    Company,
    EnrichmentStatus,
    OutcomeStatus,
)
from core.store import create_bulk_action
from core.synthetic import seed_companies
from core.text import embedding_text
from deployments.automations import WEBHOOK_URL_ENV as ALERT_WEBHOOK_ENV
from deployments.provision_limits import DEFAULT_CONCURRENCY
from deployments.server_settings import with_server_settings
from sandbox.server import SandboxServer

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
#: an OpenAI-compatible embeddings block on the sandbox for sharded actions: one call of 10 texts per batch, and a
#: limit of its own of 2 batches in flight, which the shards of one action share
SHARD_TAG, SHARD_SLOTS = "openai-e2e-shards", 2
SHARD_PROVIDER = "openai-compatible-embeddings/shards"
FLOW_RUN_TIMEOUT = 180.0

# The synthetic companies and what each test uses them for (no test depends on another's companies).
N_COMPANIES = 336
CRON = slice(0, 4)  # never enriched: what enrichment-cron finds due (every other company was enriched yesterday)
SCORE_A, SCORE_B = slice(4, 10), slice(10, 16)  # two scoring actions of 2 batches each
CRASH = slice(16, 56)  # one enrichment action of 8 batches
EMBED = slice(56, 68)  # one local embedding action of 2 batches
SHARDED, SHARDED_KILLED = slice(68, 148), slice(148, 228)  # two sandbox embedding actions of 8 batches, 2 shards
PAUSE = slice(228, 252)  # one scoring action of 8 batches, paused and resumed from the CLI
SHARED_A, SHARED_B = slice(252, 264), slice(264, 276)  # two scoring actions sharing one creator's monthly budget
RECLASSIFY = slice(276, 336)  # one LLM reclassify whose message batch outlasts a round

SANDBOX_BLOCKS = """\
import json
import sys

from prefect.client.orchestration import get_client
from pydantic import SecretStr

from blocks.embeddings import OpenAICompatibleEmbeddings
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
OpenAICompatibleEmbeddings(
    base_url=url + "/v1",
    api_key=SecretStr("sk-e2e-secret-0123456789"),
    model="sandbox-embed",
    self_hosted=True,
    concurrency_tag=settings["shard_tag"],
    calls_per_batch=1,
).save("shards", overwrite=True)
with get_client(sync_client=True) as client:  # only these names: `make limits` runs side by side
    client.upsert_global_concurrency_limit_by_name("tag:" + settings["serial_tag"], 1)
    client.upsert_global_concurrency_limit_by_name("tag:" + settings["groq_tag"], settings["groq_slots"])
    client.upsert_global_concurrency_limit_by_name("window:" + settings["groq_tag"], settings["groq_requests"])
    client.upsert_global_concurrency_limit_by_name("tag:" + settings["shard_tag"], settings["shard_slots"])
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

    def forget(self, name: str) -> int:
        """The exit code of a process that has ended, which is no longer tracked."""
        code = self.running.pop(name).wait(timeout=5)
        return code


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


# --- what the sandbox was asked to embed ---------------------------------------------------------------------


@dataclass(frozen=True)
class EmbeddingCall:
    """One ``POST /v1/embeddings`` that reached the sandbox: when it arrived and was answered (epoch seconds),
    every text it held, and the answer's status."""

    time: float
    answered: float
    texts: tuple[str, ...]
    status: int


class RecordEmbeddingTexts:
    """Pure ASGI middleware in front of the sandbox app: records every embeddings request's full list of texts.

    The sandbox logs a request's ``match_key``, the first 200 characters of its texts joined: the first of up to
    10 company texts.  Added before the app starts, it wraps the sandbox's own gateway, so it sees exactly the
    requests the sandbox sees, refused ones included (their status says so).  The list only grows (appends from
    the server's event loop, read from other threads as a copy).
    """

    def __init__(self, app: Any, calls: list[EmbeddingCall]) -> None:
        self.app = app
        self.calls = calls

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != "/v1/embeddings":
            await self.app(scope, receive, send)
            return
        arrived = time.time()
        messages: list[Any] = []
        body = b""
        while True:
            message = await receive()
            messages.append(message)
            body += message.get("body", b"")
            if message["type"] != "http.request" or not message.get("more_body"):
                break

        async def replay() -> Any:
            return messages.pop(0) if messages else await receive()

        status = 0

        async def capture(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, replay, capture)
        finally:
            try:
                raw = json.loads(body).get("input")
            except (ValueError, AttributeError):
                raw = None
            texts = (raw,) if isinstance(raw, str) else tuple(str(t) for t in raw or ())
            self.calls.append(EmbeddingCall(arrived, time.time(), texts, status))


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
    worker_env: dict[str, str] = field(default_factory=dict, repr=False)
    embedding_calls: list[EmbeddingCall] = field(default_factory=list, repr=False)  # see RecordEmbeddingTexts

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

    def workers_online(self, since: datetime | None = None) -> set[str]:
        """Workers the server sees online (with a heartbeat after ``since``, if given)."""
        workers = self.api("POST", f"/work_pools/{POOL}/workers/filter", json={})
        return {
            w["name"]
            for w in workers
            if w["status"] == "ONLINE" and (since is None or datetime.fromisoformat(w["last_heartbeat_time"]) > since)
        }

    def ensure_workers(self) -> None:
        """Start any of the two workers that is not running (a test killed it), and wait until it polls."""
        restarted: dict[str, datetime] = {}
        for name in WORKERS:
            process = self.processes.running.get(name)
            if process is None or process.poll() is not None:
                self.processes.running.pop(name, None)
                restarted[name] = datetime.now(UTC)
                self.processes.start(name, worker_command(name), self.worker_env)

        def online() -> bool:
            for name in restarted:
                if self.processes.running[name].poll() is not None:
                    raise AssertionError(f"worker {name} exited:\n{self.processes.tail(name)}")
            return all(name in self.workers_online(since) for name, since in restarted.items())

        wait_for(online, 90, f"workers {sorted(restarted)} to come online", interval=0.5)
        assert self.workers_online() == set(WORKERS)

    def texts_embedded(self, since: float = 0.0) -> Counter[str]:
        """How many answered embeddings requests since ``since`` (epoch seconds) held each text."""
        calls = list(self.embedding_calls)
        return Counter(text for call in calls if call.time >= since and call.status == 200 for text in call.texts)


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


def worker_command(name: str) -> list[str]:
    """`make worker`, named; --limit 1: a worker busy with a run leaves the next one to the other worker."""
    return [*PREFECT, "worker", "start", "--pool", POOL, "--name", name, "--limit", "1"]


@contextmanager
def deployed_system(home: Path) -> Iterator[Deployed]:
    """The whole system deployed in ``home`` (an empty directory); everything is stopped and dropped on exit."""
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
        sandbox = SandboxServer(port=0, config={"parallel": {"job_duration_s": 0.3}})
        embedding_calls: list[EmbeddingCall] = []
        sandbox.app.add_middleware(RecordEmbeddingTexts, calls=embedding_calls)
        stack.enter_context(sandbox)
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
            run_cli([sys.executable, "-m", "deployments.work_queues", "--pool", POOL], env)  # high, default, low
            http.patch(f"/work_pools/{POOL}", json={"is_paused": True}).raise_for_status()
            for name in WORKERS:
                processes.start(name, worker_command(name), worker_env)
            run_cli([*PREFECT, "--no-prompt", "deploy", "--all"], env)

        def blocks() -> None:
            run_cli([sys.executable, "-m", "deployments.register_blocks"], {**env, "BULKAI_DATABASE_URL": company_url})
            settings = {
                "serial_tag": SERIAL_TAG,
                "groq_tag": GROQ_TAG,
                "groq_slots": GROQ_SLOTS,
                "groq_requests": GROQ_REQUESTS_PER_MINUTE,
                "shard_tag": SHARD_TAG,
                "shard_slots": SHARD_SLOTS,
            }
            run_cli([sys.executable, "-c", SANDBOX_BLOCKS, sandbox.url, json.dumps(settings)], env)
            # `make deploy`'s alert automations, their webhook pointed at the sandbox's receiver (sandbox/alerts.py)
            alerts_env = {**env, ALERT_WEBHOOK_ENV: sandbox.url + "/alerts"}
            run_cli([sys.executable, "-m", "deployments.automations"], alerts_env)

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

        system = Deployed(
            api_url, env, processes, http, sandbox, db, company_url, ids, deployed, worker_env, embedding_calls
        )

        def workers_online() -> bool:
            for name in WORKERS:
                if processes.running[name].poll() is not None:
                    raise AssertionError(f"worker {name} exited:\n{processes.tail(name)}")
            return system.workers_online() == set(WORKERS)

        wait_for(workers_online, 90, "both workers to come online", interval=0.5)
        yield system


# --- sharded actions ----------------------------------------------------------------------------------------

SHARDS = 2
CALL_SIZE = get_action("generate_embeddings").call_size  # texts per embeddings request; one request per batch
PARENT = """\
from flows.generate_embeddings import generate_embeddings

generate_embeddings(selection={{"ids": {ids!r}}}, provider={provider!r}, shards={shards}, created_by={by!r})
"""


def embedding_texts(db: CompanyDatabase, ids: list[int]) -> dict[int, str]:
    with db.session() as session:
        return {c.id: embedding_text(c) for c in session.scalars(select(Company).where(Company.id.in_(ids)))}


def action_created_by(db: CompanyDatabase, created_by: str) -> BulkAction | None:
    with db.session() as session:
        record = session.scalars(select(BulkAction).where(BulkAction.created_by == created_by)).first()
        if record is not None:
            session.expunge(record)
        return record


def shard_rows(db: CompanyDatabase, bulk_action_id: int) -> list[BulkActionShard]:
    with db.session() as session:
        rows = list(
            session.scalars(
                select(BulkActionShard)
                .where(BulkActionShard.bulk_action_id == bulk_action_id)
                .order_by(BulkActionShard.shard_index)
            )
        )
        session.expunge_all()
        return rows


def shard_companies(ids: list[int]) -> list[list[int]]:
    """Each shard's companies: outcome positions follow the ids' order, and a shard is a range of batches."""
    plan = BatchPlan(total=len(ids), call_size=CALL_SIZE)
    return [ids[slice(*plan.shard_positions(shard, SHARDS))] for shard in range(SHARDS)]


def start_sharded_embeddings(system: Deployed, created_by: str, ids: list[int]) -> subprocess.Popen[bytes]:
    """``generate_embeddings(..., shards=2)`` on the sandbox block, from a Python process of its own (named
    ``created_by``), as a user starts it against the server (README, "Using it")."""
    code = PARENT.format(ids=ids, provider=SHARD_PROVIDER, shards=SHARDS, by=created_by)
    return system.processes.start(created_by, [sys.executable, "-c", code], system.env)


def wait_for_exit(system: Deployed, name: str, timeout: float = FLOW_RUN_TIMEOUT) -> int:
    """The exit code of a process ``system.processes`` started, once it has exited."""
    process = system.processes.running[name]
    wait_for(lambda: process.poll() is not None, timeout, f"{name} to exit", interval=0.5)
    return system.processes.forget(name)


def stop(system: Deployed, name: str) -> None:
    """A process a failed test left running does not outlive it."""
    process = system.processes.running.get(name)
    if process is not None and process.poll() is None:
        system.processes.kill(name)
    system.processes.running.pop(name, None)


# --- the operations policy ----------------------------------------------------------------------------------

SAVE_POLICY = """\
import json
import sys

from blocks.operations import OperationsPolicy

OperationsPolicy.model_validate(json.loads(sys.argv[1])).save("default", overwrite=True)
"""


def policy_document(system: Deployed) -> dict[str, Any] | None:
    """The saved ``operations-policy/default`` document (id and data), or None."""
    found = system.api(
        "POST",
        "/block_documents/filter",
        json={
            "block_types": {"slug": {"any_": ["operations-policy"]}},
            "block_documents": {"name": {"any_": ["default"]}},
        },
    )
    return found[0] if found else None


def save_policy(system: Deployed, data: dict[str, Any]) -> None:
    run_cli([sys.executable, "-c", SAVE_POLICY, json.dumps(data)], system.env)


@contextmanager
def operations_policy(system: Deployed, change: Callable[[dict[str, Any]], dict[str, Any]]) -> Iterator[None]:
    """The operator's policy as ``change`` makes it from the saved one (``{}`` when none is saved), saved the
    way a user saves it; the saved one restored (or the document deleted) afterwards, whatever happened."""
    before = policy_document(system)
    save_policy(system, change(dict(before["data"]) if before else {}))
    try:
        yield
    finally:
        if before:
            save_policy(system, before["data"])
        elif (saved := policy_document(system)) is not None:
            system.api("DELETE", f"/block_documents/{saved['id']}")


def seed_own_companies(system: Deployed, n: int, seed_value: int) -> list[int]:
    """Companies of one test module only, marked enriched yesterday like the system's own, so no cron finds them
    due."""
    with system.db.session() as session:
        ids = seed_companies(session, n, seed=seed_value, duplicate_fraction=0.0)
        session.execute(
            update(Company)
            .where(Company.id.in_(ids))
            .values(enrichment_status=EnrichmentStatus.ENRICHED, enriched_at=datetime.now(UTC) - timedelta(days=1))
        )
    return ids
