"""Issue #4 end to end: the system deployed the way a user deploys it, on a real ``prefect server start``.

The package-scoped ``system`` fixture (``tests/e2e/conftest.py``) builds it once for every e2e module, with the
commands a user types (``tests/e2e/deployed.py``): ``prefect server start`` and a company database on fresh
PostgreSQL databases, ``make deploy``'s commands, provider blocks on the provider sandbox and two ``prefect worker
start --pool bulkai-process`` processes.

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

import os
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import func, select

from core.db import REPO_ROOT
from core.schema import (
    BulkAction,
    BulkActionStatus,
    Company,
    CompanyEmbedding,
    CompanyScore,
    DeadJob,
    DeadJobStatus,
    EnrichmentStatus,
    OutcomeStatus,
)
from deployments.definitions import read_deployments
from deployments.provision_limits import DEFAULT_CONCURRENCY, DEFAULT_WINDOW_REQUESTS
from sandbox.server import SandboxServer
from tests.e2e.deployed import (
    CRASH,
    CRON,
    EMBED,
    FINAL_STATES,
    FLOW_RUN_TIMEOUT,
    GROQ_REQUESTS_PER_MINUTE,
    GROQ_SLOTS,
    GROQ_TAG,
    POOL,
    PREFECT,
    SCORE_A,
    SCORE_B,
    SERIAL_TAG,
    WORKERS,
    Deployed,
    action_exists,
    bulk_action_of,
    finished_action,
    get_bulk_action,
    is_gone,
    outcomes,
    run_cli,
    wait_for,
    websites,
)

# Setting up takes 30-60 s of the first test's budget on a 2-core machine.
pytestmark = pytest.mark.timeout(480)


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
    failed = {
        cid: detail for cid, (status, detail) in outcomes(db, record.id).items() if status is OutcomeStatus.FAILED
    }
    assert (final.total, final.succeeded, final.failed) == (40, 40, 0), failed
    assert (final.parameters or {}).get("flow_runs") == [first, rerun]
    assert system.flow_run(first)["state_type"] == "CRASHED"  # taken over
    summary = {row["metric"]: row["value"] for row in system.artifact(rerun, f"enrich-companies-{record.id}-summary")}
    assert summary["batches_from_checkpoint"] >= len(checkpointed), summary

    # After the kill the provider saw nothing at all for the checkpointed batches' companies (no new run, no
    # poll of their old runs), and no company whose outcome was already recorded was researched again.
    after = [e for e in system.sandbox.requests(provider="parallel") if e["time"] >= killed_at]
    # runs the provider created (a creation it refused, e.g. a 429 at its active-run cap, researched nothing)
    created_after = [e["match_key"] for e in after if e["endpoint"] == "create_run" and 200 <= e["status"] < 300]
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
