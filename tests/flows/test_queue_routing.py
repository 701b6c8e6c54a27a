"""Work queues by priority: the pool's queues, and a run created in another priority's queue moves.

A deployment on the test server (no worker: its runs are executed here with Prefect's own ``run_flow``, as a
worker's process does) whose flow only asks ``route_to_priority_queue``; the runs are created from the
deployment in a given queue, as the UI and ``prefect deployment run`` do.
"""

from __future__ import annotations

import uuid
from typing import Any

from prefect import flow
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
from prefect.client.schemas.objects import FlowRun
from prefect.flow_engine import run_flow

from deployments.work_queues import ensure_work_queues
from flows.bulk_types import BulkActionRequest
from flows.queue_routing import route_to_priority_queue


@flow(name="queue-routing-probe")
def probe(priority: int = 0, note: str = "") -> Any:
    moved = route_to_priority_queue(
        BulkActionRequest(action="generate_embeddings", selection=None, provider="x", priority=priority)
    )
    return moved if moved is not None else "stayed"


def test_the_pool_gets_high_default_and_low_queues_idempotently() -> None:
    pool = f"pool-{uuid.uuid4().hex[:8]}"
    with get_client(sync_client=True) as client:
        client.create_work_pool(work_pool=_pool(pool))
    assert ensure_work_queues(pool) == {"high": 1, "default": 2, "low": 3}
    assert ensure_work_queues(pool) == {"high": 1, "default": 2, "low": 3}  # a second run changes nothing
    with get_client(sync_client=True) as client:
        queues = client.read_work_queues(work_pool_name=pool)
    assert sorted((q.name, q.priority) for q in queues) == [("default", 2), ("high", 1), ("low", 3)]


def test_a_run_in_another_prioritys_queue_moves_to_its_own() -> None:
    pool = f"pool-{uuid.uuid4().hex[:8]}"
    with get_client(sync_client=True) as client:
        client.create_work_pool(work_pool=_pool(pool))
        ensure_work_queues(pool)
        deployment_id = client.create_deployment(
            flow_id=client.create_flow(probe),
            name="probe",
            work_pool_name=pool,
            work_queue_name="default",
            entrypoint="tests/flows/test_queue_routing.py:probe",
        )
        # `prefect deployment run -p priority=9`: the deployment's queue, "default"
        misqueued = client.create_flow_run_from_deployment(
            deployment_id, parameters={"priority": 9, "note": "urgent"}, tags=["asked-by-ops"]
        )
        assert misqueued.work_queue_name == "default"
    state = run_flow(probe, flow_run=misqueued, parameters=misqueued.parameters, return_type="state")
    assert state.is_completed() and "moved to flow run" in str(state.message), state
    with get_client(sync_client=True) as client:
        moved = _runs_of(client, deployment_id, exclude=misqueued.id)
        assert [(r.work_queue_name, r.parameters, "asked-by-ops" in r.tags) for r in moved] == [
            ("high", {"priority": 9, "note": "urgent"}, True)
        ]
        assert str(moved[0].id) in str(state.message)
        # the moved run is where it belongs: it stays (and so does a priority-0 run in "default")
        for run in (moved[0], client.create_flow_run_from_deployment(deployment_id, parameters={"priority": 0})):
            assert run_flow(probe, flow_run=run, parameters=run.parameters) == "stayed"
    assert probe(priority=9) == "stayed"  # no deployment: nothing to move


def _pool(name: str) -> WorkPoolCreate:
    return WorkPoolCreate(name=name, type="process")


def _runs_of(client: SyncPrefectClient, deployment_id: uuid.UUID, exclude: uuid.UUID) -> list[FlowRun]:
    runs = client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])))
    return [r for r in runs if r.id != exclude]
