"""One bulk action spread over both workers (``shards=2``), on the deployed system of ``tests/e2e/deployed.py``.

A user starts the parent from Python, as the README's "Using it" does (not on a worker: with ``--limit 1`` a
parent on one worker would leave a single worker for both shards).  The parent creates the action and submits
one child flow run per shard to the work pool with ``run_deployment``; each worker runs one shard, holding its
own slots of the provider's limit (2 for the sandbox embeddings block, shared by both shards), and the parent
ends the action once both shards have.

What the tests show, counted where it lands (each company's text at the sandbox, its vector in the database):
every company is embedded once, by one of the two shards; and when the worker running a shard is SIGKILLed, the
other shard still completes, the parent keeps waiting, and the shard rerun on its own (``bulk_action_id`` +
``shard_index`` + ``takeover``) completes on the surviving worker without sending again any company whose outcome
was recorded before the kill, after which the parent ends the action.
"""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from core.schema import BulkActionStatus, CompanyEmbedding, OutcomeStatus
from tests.e2e.deployed import (
    CALL_SIZE,
    FLOW_RUN_TIMEOUT,
    SHARD_SLOTS,
    SHARD_TAG,
    SHARDED,
    SHARDED_KILLED,
    SHARDS,
    WORKERS,
    Deployed,
    action_created_by,
    embedding_texts,
    get_bulk_action,
    is_gone,
    outcomes,
    shard_companies,
    shard_rows,
    start_sharded_embeddings,
    stop,
    wait_for,
    wait_for_exit,
)

# The first test to run pays for the system's setup (30-60 s on a 2-core machine).
pytestmark = pytest.mark.timeout(480)


def at_the_sandbox_at_once(system: Deployed, since: float, first: set[str], second: set[str]) -> bool:
    """Whether a request holding texts of ``first`` and one holding texts of ``second`` were in flight together."""
    calls = [c for c in system.embedding_calls if c.time >= since]
    a = [(c.time, c.answered) for c in calls if first.intersection(c.texts)]
    b = [(c.time, c.answered) for c in calls if second.intersection(c.texts)]
    return any(start_a < end_b and start_b < end_a for start_a, end_a in a for start_b, end_b in b)


def test_a_sharded_action_runs_one_shard_on_each_worker(system: Deployed) -> None:
    system.ensure_workers()
    db = system.db
    ids = system.companies(SHARDED)
    texts = embedding_texts(db, ids)
    system.sandbox.reset()
    system.sandbox.configure("openai", latency_ms=300, faults=[])
    since = time.time()
    name = "sharded-parent"
    start_sharded_embeddings(system, name, ids)
    try:
        code = wait_for_exit(system, name)
    finally:
        stop(system, name)
    assert code == 0, system.processes.tail(name, 60)

    record = action_created_by(db, name)
    assert record is not None and record.flow_run_id
    assert record.status is BulkActionStatus.COMPLETED, record.status_reason
    assert (record.total, record.succeeded, record.skipped, record.failed) == (80, 80, 0, 0)
    assert (record.parameters or {}).get("shards") == SHARDS

    # the parent is the flow run the user started (no deployment); each shard is a child flow run of it, on the
    # generate-embeddings deployment, and each worker ran one of them
    parent = system.flow_run(record.flow_run_id)
    assert parent["state_type"] == "COMPLETED" and parent["deployment_id"] is None, system.explain(parent)
    rows = shard_rows(db, record.id)
    assert [(r.shard_index, r.status, r.total, r.succeeded, r.failed) for r in rows] == [
        (0, BulkActionStatus.COMPLETED, 40, 40, 0),
        (1, BulkActionStatus.COMPLETED, 40, 40, 0),
    ]
    children = [system.flow_run(str(r.flow_run_id)) for r in rows]
    for shard, child in enumerate(children):
        assert child["state_type"] == "COMPLETED", system.explain(child)
        assert child["deployment_id"] == system.deployed["generate-embeddings"]["id"]
        assert child["parameters"]["shard_index"] == shard and child["parameters"]["bulk_action_id"] == record.id
    linked = system.flow_runs(parent_flow_run_id={"any_": [record.flow_run_id]})
    assert sorted(r["id"] for r in linked) == sorted(c["id"] for c in children)
    assert {system.worker_of(c["id"]) for c in children} == set(WORKERS), "each worker should run one shard"
    by_shard = [{texts[cid] for cid in part} for part in shard_companies(ids)]
    assert at_the_sandbox_at_once(system, since, *by_shard), "the shards should have called the provider side by side"
    assert sum(r.provider_calls for r in rows) == 8  # 8 batches of one call

    progress = system.artifact(record.flow_run_id, f"generate-embeddings-{record.id}-progress")
    assert float(progress) == 100.0
    summary = {
        row["metric"]: row["value"]
        for row in system.artifact(record.flow_run_id, f"generate-embeddings-{record.id}-summary")
    }
    assert (summary["status"], summary["total"], summary["succeeded"], summary["shards"]) == ("completed", 80, 80, 2)

    # every company got its vector, and the sandbox saw each company's text exactly once
    with db.session() as session:
        stored = dict(
            session.execute(
                select(CompanyEmbedding.company_id, CompanyEmbedding.text).where(
                    CompanyEmbedding.company_id.in_(ids), CompanyEmbedding.model_id == "sandbox-embed"
                )
            )
            .tuples()
            .all()
        )
    assert stored == texts
    seen = system.texts_embedded(since)
    assert {cid: seen[texts[cid]] for cid in ids} == dict.fromkeys(ids, 1)
    stats = system.sandbox.stats(log=False)["providers"]["openai"]
    assert stats["rate_limited"] == 0 and stats["peak_concurrency"] <= SHARD_SLOTS, stats
    assert system.limit(f"tag:{SHARD_TAG}")["active_slots"] == 0


def test_a_killed_shard_reruns_alone_and_the_parent_ends_the_action(system: Deployed) -> None:
    system.ensure_workers()
    db = system.db
    ids = system.companies(SHARDED_KILLED)
    texts = embedding_texts(db, ids)
    by_shard = shard_companies(ids)
    # a second a call: a shard's 4 batches take several seconds, time enough to kill one mid-way
    system.sandbox.configure("openai", latency_ms=1000, faults=[])
    since = time.time()
    name = "killed-shard-parent"
    start_sharded_embeddings(system, name, ids)
    try:
        record = wait_for(lambda: action_created_by(db, name), 60, "the bulk action record")

        def shard_one_under_way() -> str | None:
            if system.processes.running[name].poll() is not None:
                raise AssertionError(f"the parent exited early:\n{system.processes.tail(name, 60)}")
            rows = shard_rows(db, record.id)
            if len(rows) < SHARDS or not rows[1].flow_run_id:
                return None
            if rows[1].status.finished:
                raise AssertionError(f"shard 1 ended before it could be killed: {rows[1].status_reason}")
            done = outcomes(db, record.id)
            recorded = sum(done[cid][0] is not OutcomeStatus.PENDING for cid in by_shard[1])
            return rows[1].flow_run_id if recorded >= CALL_SIZE else None

        child = wait_for(shard_one_under_way, FLOW_RUN_TIMEOUT, "a batch of shard 1's outcomes", interval=0.1)
        victim = system.worker_of(child)
        assert victim is not None
        survivor = next(worker for worker in WORKERS if worker != victim)
        flow_run_pid = int(str(system.flow_run(child)["infrastructure_pid"]).rsplit(":", 1)[-1])
        killed = system.processes.kill(victim)
        killed_at = time.time()
        assert flow_run_pid in killed
        wait_for(lambda: is_gone(flow_run_pid), 15, "the shard's flow run process to die")
        at_kill = outcomes(db, record.id)
        paid_before = {cid for cid, (status, _) in at_kill.items() if status is OutcomeStatus.SUCCEEDED}
        batches_left = {i // CALL_SIZE for i, cid in enumerate(by_shard[1]) if at_kill[cid][0] is OutcomeStatus.PENDING}
        assert 1 <= len(batches_left) < 4, batches_left

        # shard 0 completes on the other worker; the parent keeps waiting on shard 1, whose run the server still
        # shows as running (nobody told it), and keeps writing the action's progress
        wait_for(
            lambda: shard_rows(db, record.id)[0].status is BulkActionStatus.COMPLETED,
            FLOW_RUN_TIMEOUT,
            "shard 0 to complete",
        )
        processed = sum(status is not OutcomeStatus.PENDING for status, _ in outcomes(db, record.id).values())
        wait_for(
            lambda: get_bulk_action(db, record.id).processed >= processed,
            30,
            "the parent to write the progress of the completed shard",
        )
        assert system.processes.running[name].poll() is None, system.processes.tail(name, 60)
        assert get_bulk_action(db, record.id).status is BulkActionStatus.RUNNING
        rows = shard_rows(db, record.id)
        assert (rows[1].status, rows[1].flow_run_id) == (BulkActionStatus.RUNNING, child)
        assert system.flow_run(child)["state_type"] == "RUNNING"
        assert system.flow_run(str(record.flow_run_id))["state_type"] == "RUNNING"

        # the shard rerun alone takes its row over, crashes the dead run, and resumes on the surviving worker
        rerun = system.deployment_run(
            "generate-embeddings/generate-embeddings",
            bulk_action_id=record.id,
            shard_index=1,
            shards=SHARDS,
            takeover=True,
        )
        system.expect_completed(rerun)
        assert system.worker_of(rerun) == survivor
        code = wait_for_exit(system, name)
        assert code == 0, system.processes.tail(name, 60)
    finally:
        stop(system, name)
        system.ensure_workers()  # the killed worker is back for whatever runs next

    final = get_bulk_action(db, record.id)
    assert final.status is BulkActionStatus.COMPLETED, final.status_reason
    assert (final.total, final.succeeded, final.failed) == (80, 80, 0)
    assert system.flow_run(str(record.flow_run_id))["state_type"] == "COMPLETED"
    assert system.flow_run(child)["state_type"] == "CRASHED"  # taken over
    rows = shard_rows(db, record.id)
    assert [(r.status, r.succeeded) for r in rows] == [(BulkActionStatus.COMPLETED, 40)] * 2
    assert rows[1].flow_run_id == rerun
    # the rerun called the provider once for each batch that still had pending companies, no more
    assert rows[1].provider_calls == len(batches_left), (rows[1].provider_calls, batches_left)

    # The sandbox saw every company's text; only those in flight at the kill (at most the shard's slots' calls)
    # twice, and after the kill nothing whose outcome had been recorded.
    seen = system.texts_embedded(since)
    assert all(seen[texts[cid]] >= 1 for cid in ids)
    twice = {cid: seen[texts[cid]] for cid in ids if seen[texts[cid]] > 1}
    assert set(twice) <= set(by_shard[1]) and len(twice) <= SHARD_SLOTS * CALL_SIZE, twice
    assert max(twice.values(), default=2) == 2, twice
    after = system.texts_embedded(killed_at)
    assert not [cid for cid in paid_before if after[texts[cid]]], "a company was embedded again after its outcome"
    assert system.limit(f"tag:{SHARD_TAG}")["active_slots"] == 0
