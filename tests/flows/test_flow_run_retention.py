"""Prefect's history stays bounded: ``cleanup`` deletes old flow runs, never one of an unfinished bulk action.

The flow runs are real ones on the session's server, ended in terminal states; the server stamps ``end_time``
itself, so "old" is prepared by moving ``end_time`` back in the server's own database (time is the one thing a
test may fake).  Only this test's runs are old, so the deletion touches nothing else on the shared server.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
import sqlalchemy as sa
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound
from prefect.settings import get_current_settings
from prefect.states import Completed, Crashed, Failed, Running

from blocks.database import CompanyDatabase
from blocks.loading import clear_block_cache, load_database
from core.schema import BulkAction, BulkActionStatus
from flows.cleanup import cleanup


@flow(name="retention-probe")
def probe() -> None:
    """Never run: its flow runs are created and moved through states by the test."""


@pytest.fixture
def fresh(tmp_path: Path) -> tuple[str, CompanyDatabase]:
    name = f"retention-{uuid.uuid4().hex[:10]}"
    CompanyDatabase(url=f"sqlite:///{tmp_path / 'companies.db'}").save(name, overwrite=True)  # type: ignore[arg-type]
    clear_block_cache()
    return name, load_database(name)


@pytest.fixture
def prefect_db() -> Iterator[sa.Engine]:
    """The session server's own database (the harness keeps it in a SQLite file named by the settings)."""
    secret = get_current_settings().server.database.connection_url
    assert secret is not None
    url = sa.make_url(secret.get_secret_value())
    assert url.get_backend_name() == "sqlite", "the harness server runs on SQLite"
    engine = sa.create_engine(url.set(drivername="sqlite"), poolclass=sa.NullPool)
    yield engine
    engine.dispose()


def ended_run(state: Any) -> str:
    with get_client(sync_client=True) as client:
        run = client.create_flow_run(probe)
        client.set_flow_run_state(run.id, Running(), force=True)
        client.set_flow_run_state(run.id, state, force=True)
        assert client.read_flow_run(run.id).end_time is not None
    return str(run.id)


def live_run() -> str:
    with get_client(sync_client=True) as client:
        run = client.create_flow_run(probe)
        client.set_flow_run_state(run.id, Running(), force=True)
    return str(run.id)


def backdate(engine: sa.Engine, flow_run_id: str, days: float) -> None:
    when = (datetime.now(UTC) - timedelta(days=days)).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
    with engine.begin() as connection:
        result = connection.execute(
            sa.text("UPDATE flow_run SET end_time = :when WHERE id = :id"), {"when": when, "id": flow_run_id}
        )
        assert result.rowcount == 1


def exists(flow_run_id: str) -> bool:
    with get_client(sync_client=True) as client:
        try:
            client.read_flow_run(UUID(flow_run_id))
        except ObjectNotFound:
            return False
    return True


def test_old_flow_runs_go_except_those_of_unfinished_bulk_actions(
    fresh: tuple[str, CompanyDatabase], prefect_db: sa.Engine
) -> None:
    name, db = fresh
    runs = {
        "finished_action": ended_run(Completed()),  # old, its action completed: deleted
        "no_action": ended_run(Failed()),  # old, no bulk action at all: deleted
        "waiting_round": ended_run(Completed()),  # old round of an action still waiting for its batches: kept
        "crashed_paused": ended_run(Crashed()),  # old crashed run of a paused action, to be resumed: kept
        "shard_of_running": ended_run(Crashed()),  # old run that drove a shard of a running action: kept
        "recent": ended_run(Completed()),  # recent, action completed: kept (not old)
    }
    for key in runs:
        if key != "recent":
            backdate(prefect_db, runs[key], days=40)
    with db.session() as session:
        session.add(
            BulkAction(
                action="generate_embeddings",
                status=BulkActionStatus.COMPLETED,
                flow_run_id=runs["finished_action"],
                parameters={"flow_runs": [runs["finished_action"], runs["recent"]]},
            )
        )
        session.add(
            BulkAction(
                action="reclassify",
                status=BulkActionStatus.WAITING,
                flow_run_id=str(uuid.uuid4()),  # the next round, scheduled
                parameters={"flow_runs": [runs["waiting_round"]]},
            )
        )
        session.add(
            BulkAction(
                action="score_llm_adoption",
                status=BulkActionStatus.PAUSED,
                flow_run_id=runs["crashed_paused"].upper(),  # ids compare whatever their case
                parameters={},
            )
        )
        running = BulkAction(
            action="enrich_companies",
            status=BulkActionStatus.RUNNING,
            flow_run_id=live_run(),  # its parent run is alive, so the cleanup does not take it for stuck
            parameters={},
        )
        session.add(running)
        session.flush()
        session.execute(
            sa.text(
                "INSERT INTO bulk_action_shards (bulk_action_id, shard_index, shards, status, flow_run_id, total, "
                "succeeded, skipped, failed, provider_calls, batches_from_checkpoint, updated_at) "
                "VALUES (:a, 0, 2, 'running', :r, 0, 0, 0, 0, 0, 0, CURRENT_TIMESTAMP)"
            ),
            {"a": running.id, "r": runs["shard_of_running"]},
        )

    common: dict[str, Any] = {"database": name, "flow_run_retention_days": 30, "protect_databases": [name]}
    rehearsal = cleanup(**common, dry_run=True)
    assert rehearsal["deleted_flow_runs"] == 2 and rehearsal["kept_flow_runs"] == 3
    assert all(exists(run) for run in runs.values()), "a dry run deletes nothing"

    unreadable = cleanup(**{**common, "protect_databases": [name, "no-such-database-block"]})
    assert unreadable["deleted_flow_runs"] == 0
    assert "could not be read" in unreadable["flow_runs_skipped_reason"]
    assert all(exists(run) for run in runs.values()), "unprovable safety deletes nothing"

    report = cleanup(**common)
    assert report["deleted_flow_runs"] == 2 and report["kept_flow_runs"] == 3
    gone = {key for key, run in runs.items() if not exists(run)}
    assert gone == {"finished_action", "no_action"}
