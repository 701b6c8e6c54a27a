"""The Prefect events bulkai emits: their names, the resources they concern and their payloads.

Names and shapes live here, free of Prefect, so the emitters (``tasks.events``), the alert automations
(``deployments.automations``) and the README agree on one list.  Every bulk-action event has the bulk action as
its resource (``bulkai.bulk-action.<id>``, labelled with the action, priority and creator) and the flow run that
drove it as a related resource; circuit events have the provider's breaker as their resource
(``bulkai.provider-circuit.<tag>``).
"""

from __future__ import annotations

from typing import Any

PREFIX = "bulkai"

STARTED = "bulkai.bulk-action.started"
PROGRESS = "bulkai.bulk-action.progress"
FINISHED = "bulkai.bulk-action.finished"
BUDGET_REACHED = "bulkai.bulk-action.budget-reached"
PAUSED = "bulkai.bulk-action.paused"
RESUMED = "bulkai.bulk-action.resumed"
FAILURE_RATIO_EXCEEDED = "bulkai.bulk-action.failure-ratio-exceeded"
SLOW = "bulkai.bulk-action.slower-than-estimate"
CIRCUIT_OPENED = "bulkai.circuit.opened"
CIRCUIT_REOPENED = "bulkai.circuit.reopened"
CIRCUIT_HALF_OPENED = "bulkai.circuit.half-opened"
CIRCUIT_CLOSED = "bulkai.circuit.closed"
DEAD_JOBS_BACKLOG = "bulkai.dead-jobs.backlog"

#: every event name, with what its payload holds (the README's table is built from the same words)
EVENTS: dict[str, str] = {
    STARTED: "action, total, priority, created_by, estimated_seconds (null when no estimate)",
    PROGRESS: "action, processed, total, succeeded, failed, skipped, failure_ratio, percent, elapsed_seconds, "
    "spent_usd (at most one per progress_event_seconds, and one at the end)",
    FINISHED: "action, status, reason, total, succeeded, failed, skipped, seconds, spent_usd",
    BUDGET_REACHED: "action, reason, spent_usd, budget_usd",
    PAUSED: "action, reason",
    RESUMED: "action, budget_usd (the raised budget, or null)",
    FAILURE_RATIO_EXCEEDED: "action, failure_ratio, threshold, processed, failed (once per flow run)",
    SLOW: "action, elapsed_seconds, estimated_seconds, factor (once per flow run)",
    CIRCUIT_OPENED: "tag, reason, consecutive_failures, outage_seconds (a closed breaker opened: an outage began)",
    CIRCUIT_REOPENED: "tag, reason, outage_seconds (a half-open probe failed: the outage goes on)",
    CIRCUIT_HALF_OPENED: "tag, probes",
    CIRCUIT_CLOSED: "tag, outage_seconds",
    DEAD_JOBS_BACKLOG: "open, threshold, by_action",
}


def bulk_action_resource(bulk_action_id: int, action: str, priority: int = 0, created_by: str = "") -> dict[str, str]:
    """The resource of every bulk-action event (labels are strings: Prefect's resources are string maps)."""
    return {
        "prefect.resource.id": f"bulkai.bulk-action.{bulk_action_id}",
        "prefect.resource.name": f"{action} #{bulk_action_id}",
        "bulkai.action": action,
        "bulkai.priority": str(priority),
        "bulkai.created-by": created_by,
    }


def circuit_resource(tag: str) -> dict[str, str]:
    return {"prefect.resource.id": f"bulkai.provider-circuit.{tag}", "prefect.resource.name": f"{tag} circuit"}


def dead_jobs_resource() -> dict[str, str]:
    return {"prefect.resource.id": "bulkai.dead-jobs", "prefect.resource.name": "dead jobs"}


def flow_run_related(flow_run_id: str | None) -> list[dict[str, str]]:
    if not flow_run_id:
        return []
    return [{"prefect.resource.id": f"prefect.flow-run.{flow_run_id}", "prefect.resource.role": "flow-run"}]


def rounded(payload: dict[str, Any]) -> dict[str, Any]:
    """Floats to 4 places: payloads are read by people and automations, not re-computed."""
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in payload.items()}
