"""Issue #16, priorities end to end: a high-priority run submitted behind a backlog of low ones starts first.

On the deployed system (``make deploy`` gave the pool its ``high``, ``default`` and ``low`` queues with Prefect
queue priorities 1, 2, 3), the pool is held (paused, one run at a time) while a backlog builds: three
priority -1 dry runs of generate-embeddings in queue ``low``, then a priority-9 one in queue ``high`` as the UI
creates it (the API with ``work_queue_name``), and another priority-9 one with ``prefect deployment run -p
priority=9``, which lands in the deployment's queue ``default`` and moves itself to ``high``
(``flows.queue_routing``).  Released, the workers start both high-priority runs before every low one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from tests.e2e.deployed import EMBED, POOL, Deployed

pytestmark = pytest.mark.timeout(480)

DEPLOYMENT = "generate-embeddings"


def _started(run: dict[str, Any]) -> datetime:
    assert run["start_time"], run
    return datetime.fromisoformat(run["start_time"])


def test_a_high_priority_run_starts_before_a_backlog_of_low_ones(system: Deployed) -> None:
    queues = system.api("POST", f"/work_pools/{POOL}/queues/filter", json={})
    assert {q["name"]: q["priority"] for q in queues} == {"high": 1, "default": 2, "low": 3}
    deployment_id = system.deployed[DEPLOYMENT]["id"]
    ids = system.companies(EMBED)[:3]
    pool_before = system.api("GET", f"/work_pools/{POOL}")

    def submit(priority: int, queue: str) -> str:
        """A run created the way the UI creates it: the deployment's parameters and a chosen work queue."""
        run = system.api(
            "POST",
            f"/deployments/{deployment_id}/create_flow_run",
            json={
                "parameters": {"company_ids": ids, "dry_run": True, "priority": priority},
                "work_queue_name": queue,
            },
        )
        assert run["work_queue_name"] == queue
        return str(run["id"])

    system.api("PATCH", f"/work_pools/{POOL}", json={"is_paused": True, "concurrency_limit": 1})
    try:
        lows = [submit(-1, "low") for _ in range(3)]
        high = submit(9, "high")
        from_cli = system.deployment_run(
            f"{DEPLOYMENT}/{DEPLOYMENT}", company_ids=ids, dry_run=True, priority=9
        )  # lands in the deployment's queue
        assert system.flow_run(from_cli)["work_queue_name"] == "default"
        system.api("PATCH", f"/work_pools/{POOL}", json={"is_paused": False})
        for run_id in [high, from_cli, *lows]:
            system.expect_completed(run_id)
    finally:
        system.api(
            "PATCH",
            f"/work_pools/{POOL}",
            json={"is_paused": pool_before["is_paused"], "concurrency_limit": pool_before["concurrency_limit"]},
        )

    cli_run = system.flow_run(from_cli)
    message = str(cli_run["state"]["message"])
    assert "moved to flow run" in message, message
    moved_id = message.rsplit(" ", 1)[-1]
    moved = system.expect_completed(moved_id)
    assert moved["work_queue_name"] == "high"
    assert moved["parameters"] == {"company_ids": ids, "dry_run": True, "priority": 9}
    low_starts = [_started(system.flow_run(run_id)) for run_id in lows]
    assert _started(system.flow_run(high)) < min(low_starts)
    assert _started(moved) < min(low_starts)  # the moved run also jumped the low backlog
    assert system.api("GET", f"/work_pools/{POOL}")["concurrency_limit"] == pool_before["concurrency_limit"]
