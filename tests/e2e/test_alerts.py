"""Issue #16's alerts end to end: each automation ``make deploy`` creates fires on the real server and the
notification reaches a webhook receiver the test reads (the sandbox's ``/alerts``, sandbox/alerts.py).

The deployed system ran ``python -m deployments.automations`` with its webhook pointed at the sandbox's receiver
(tests/e2e/deployed.py).  Here an operator lowers the thresholds in the ``OperationsPolicy`` block (a stall of
15 s, a backlog past 2 dead jobs) and runs it again, as the README says: it updates what changed, and a third
run changes nothing.  Then each alert's condition is prepared:

* **dead-jobs backlog** (real): three open dead jobs in the company database and a run of the
  ``dead-job-review`` deployment on a worker (a dry run: it reports and emits, and changes nothing);
* **failure ratio, slower than estimate, budget reached, circuit opened, stalled** (emitted): the engine's and
  the breaker's event, sent with ``tasks.events.emit`` from a process of its own against the e2e server, with
  the resource and payload ``core.events`` defines, as the engine sends them.  Each is one entry of
  ``CONDITIONS``; a real condition replaces its ``prepare`` function and keeps its expectations.

The receiver is polled with a timeout (the benchmark target is 60 s from condition to notification); a stall
needs its window first, and Prefect evaluates proactive triggers every 5 s.
"""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import delete

from blocks.operations import AlertThresholds
from core import events
from core.schema import DeadJob, DeadJobStatus
from deployments.automations import alerts
from tests.e2e.deployed import Deployed, run_cli, wait_for

pytestmark = pytest.mark.timeout(480)

NOTIFY_TIMEOUT = 60.0  # the alert_latency_seconds target
STALL_MINUTES = 0.25  # 15 s: Prefect's proactive floor is 10 s, evaluated every 5 s
DEAD_JOBS_THRESHOLD = 2
ALERT_NAMES = [a.name for a in alerts(AlertThresholds())]

SAVE_POLICY = """\
import json
import sys

from blocks.operations import OperationsPolicy

OperationsPolicy.model_validate(json.loads(sys.argv[1])).save("default", overwrite=True)
"""

EMIT = """\
import json
import sys

from tasks.events import emit

for name, resource, payload, related in json.loads(sys.argv[1]):
    emit(name, resource, payload, related)
"""


# --- the receiver, the policy and the events ------------------------------------------------------------------


def received(system: Deployed) -> list[dict[str, Any]]:
    """Every notification the receiver got: the custom webhook's JSON (subject, body, text)."""
    entries: list[dict[str, Any]] = system.sandbox.client.get("/alerts").json()
    return [entry["body"] for entry in entries if isinstance(entry.get("body"), dict)]


def notification(system: Deployed, marker: str, timeout: float = NOTIFY_TIMEOUT) -> dict[str, Any]:
    """The first notification whose subject names ``marker``, once it arrives."""

    def found() -> dict[str, Any] | None:
        return next((n for n in received(system) if marker in str(n.get("subject"))), None)

    return wait_for(found, timeout, f"a notification naming {marker!r}", interval=0.25)


def emit_events(system: Deployed, *batch: tuple[str, dict[str, str], dict[str, Any], list[dict[str, str]]]) -> None:
    """Emit events with ``tasks.events.emit`` from a process of its own (it drains its events on exit)."""
    run_cli([sys.executable, "-c", EMIT, json.dumps(batch)], system.env)


def action_event(
    name: str, bulk_action_id: int, action: str, **payload: Any
) -> tuple[str, dict[str, str], dict[str, Any], list[dict[str, str]]]:
    """A bulk-action event as ``tasks.events.emit_action_event`` builds it."""
    resource = events.bulk_action_resource(bulk_action_id, action, priority=0, created_by="e2e-alerts")
    related = events.flow_run_related(str(uuid.uuid4()))
    return name, resource, {"action": action, **payload}, related


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


def deploy_alerts(system: Deployed) -> dict[str, str]:
    """``python -m deployments.automations`` as ``make deploy`` runs it; what it says it did, by name."""
    output = run_cli([sys.executable, "-m", "deployments.automations"], system.env)
    return dict(line.rsplit(": ", 1) for line in output.splitlines() if ": " in line)


@pytest.fixture(scope="module")
def alerting(system: Deployed) -> Iterator[dict[str, dict[str, str]]]:
    """The operator's low thresholds saved and the automations re-deployed twice; the policy restored after."""
    system.ensure_workers()
    before = policy_document(system)
    data = dict(before["data"]) if before else {}
    alerts_data = {**data.get("alerts", {}), "stall_minutes": STALL_MINUTES, "dead_jobs_open": DEAD_JOBS_THRESHOLD}
    save_policy(system, {**data, "alerts": alerts_data})
    try:
        yield {"first": deploy_alerts(system), "second": deploy_alerts(system)}
    finally:
        if before:
            save_policy(system, before["data"])
        elif (saved := policy_document(system)) is not None:
            system.api("DELETE", f"/block_documents/{saved['id']}")


# --- the conditions -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Condition:
    """How one alert's condition is brought about, and what its notification must say."""

    alert: str  # the automation's name
    prepare: Callable[[Deployed], None]
    marker: str  # a text only this condition's notification subject holds
    says: tuple[str, ...]  # texts its subject or body must hold
    real: bool = False
    timeout: float = NOTIFY_TIMEOUT


FAILING, SLOW, BUDGET, STALLED, FINISHED = 880_001, 880_002, 880_003, 880_004, 880_005
CIRCUIT_TAG = "groq-e2e-alerts"


def failure_ratio(system: Deployed) -> None:
    emit_events(
        system,
        action_event(
            events.FAILURE_RATIO_EXCEEDED, FAILING, "score_llm_adoption",
            failure_ratio=0.5, threshold=0.2, processed=40, failed=20,
        ),
    )  # fmt: skip


def slower_than_estimate(system: Deployed) -> None:
    emit_events(
        system,
        action_event(events.SLOW, SLOW, "enrich_companies", elapsed_seconds=130.0, estimated_seconds=40.0, factor=3.25),
    )


def budget_reached(system: Deployed) -> None:
    emit_events(
        system,
        action_event(
            events.BUDGET_REACHED, BUDGET, "score_llm_adoption",
            reason="budget of 0.0010 USD reached", spent_usd=0.001, budget_usd=0.001,
        ),
    )  # fmt: skip


def circuit_opened(system: Deployed) -> None:
    payload = {"tag": CIRCUIT_TAG, "reason": "3 failures in a row", "consecutive_failures": 3, "outage_seconds": 2.5}
    emit_events(system, (events.CIRCUIT_OPENED, events.circuit_resource(CIRCUIT_TAG), payload, []))


def stalled(system: Deployed) -> None:
    """One action starts and goes quiet; another starts and finishes at once (it must not be reported)."""
    emit_events(
        system,
        action_event(events.STARTED, FINISHED, "generate_embeddings", total=10, estimated_seconds=None),
        action_event(
            events.FINISHED, FINISHED, "generate_embeddings",
            status="completed", reason="", total=10, succeeded=10, failed=0, skipped=0, seconds=1.0, spent_usd=0.0,
        ),
        action_event(events.STARTED, STALLED, "generate_embeddings", total=10, estimated_seconds=None),
    )  # fmt: skip


def dead_jobs_backlog(system: Deployed) -> None:
    """Three open dead jobs, then the deployed dead-job review (a dry run) finds them past the threshold."""
    with system.db.session() as session:
        session.add_all(
            DeadJob(
                action="enrich_companies",
                company_id=company_id,
                error_class="InvalidOutputError",
                error_message="e2e-alerts: the provider's answer did not parse",
                status=DeadJobStatus.OPEN,
            )
            for company_id in system.ids[:3]
        )
    try:
        review = system.deployment_run("dead-job-review/dead-job-review", dry_run=True)
        system.expect_completed(review)
    finally:  # no other test's review may find them
        with system.db.session() as session:
            session.execute(delete(DeadJob).where(DeadJob.error_message.like("e2e-alerts:%")))


CONDITIONS = [
    Condition(
        "bulkai: failure ratio over threshold", failure_ratio, f"#{FAILING}",
        ("failure ratio 0.5 over 0.2", "20 of 40 processed companies failed", "created by e2e-alerts"),
    ),
    Condition(
        "bulkai: bulk action stalled", stalled, f"#{STALLED}",
        ("no progress for 0.25 minutes", "since its bulkai.bulk-action.started event", "processed 0 of 10"),
        timeout=STALL_MINUTES * 60 + NOTIFY_TIMEOUT,
    ),
    Condition(
        "bulkai: slower than estimate", slower_than_estimate, f"#{SLOW}",
        ("3.25x slower than its estimate", "130.0 s against an estimate of 40.0 s"),
    ),
    Condition(
        "bulkai: budget reached", budget_reached, f"#{BUDGET}",
        ("budget reached (0.001 of 0.001 USD)", "Reason: budget of 0.0010 USD reached"),
    ),
    Condition(
        "bulkai: provider circuit opened", circuit_opened, f"circuit {CIRCUIT_TAG} opened",
        ("3 failures in a row", "outage so far 2.5 s"),
    ),
    Condition(
        "bulkai: dead-jobs backlog", dead_jobs_backlog, "open dead jobs (threshold 2)",
        ("enrich_companies:",), real=True, timeout=NOTIFY_TIMEOUT,
    ),
]  # fmt: skip


# --- the tests ------------------------------------------------------------------------------------------------


def test_make_deploy_updates_the_automations_from_the_policy_and_changes_nothing_again(
    system: Deployed, alerting: dict[str, dict[str, str]]
) -> None:
    first, second = alerting["first"], alerting["second"]
    assert first["block bulkai-alerts"] == "kept", "the operator's notification block is never replaced"
    assert first["bulkai: bulk action stalled"] == "updated", first  # its window comes from the policy
    assert first["bulkai: failure ratio over threshold"] == "unchanged", first
    assert {second[name] for name in ALERT_NAMES} == {"unchanged"}, second
    automations = system.api("POST", "/automations/filter", json={})
    names = [a["name"] for a in automations if a["name"].startswith("bulkai: ")]
    assert sorted(names) == sorted(ALERT_NAMES), "one automation per alert, never duplicated"
    [stall] = [a for a in automations if a["name"] == "bulkai: bulk action stalled"]
    assert stall["trigger"]["posture"] == "Proactive" and stall["trigger"]["within"] == STALL_MINUTES * 60
    assert stall["trigger"]["for_each"] == ["prefect.resource.id"]
    [action] = stall["actions"]
    block = system.api("GET", f"/block_documents/{action['block_document_id']}")
    assert block["name"] == "bulkai-alerts" and block["block_type"]["slug"] == "custom-webhook"
    assert block["data"]["url"] == system.sandbox.url + "/alerts"


def test_every_alert_has_a_condition() -> None:
    assert sorted(c.alert for c in CONDITIONS) == sorted(ALERT_NAMES)


@pytest.mark.parametrize("condition", CONDITIONS, ids=[c.alert.removeprefix("bulkai: ") for c in CONDITIONS])
def test_the_alert_fires_and_the_receiver_gets_the_notification(
    system: Deployed, alerting: dict[str, dict[str, str]], condition: Condition
) -> None:
    assert not [n for n in received(system) if condition.marker in str(n.get("subject"))], "no alert before"
    condition.prepare(system)
    sent = notification(system, condition.marker, condition.timeout)
    text = f"{sent['subject']}\n{sent['body']}"
    for expected in condition.says:
        assert expected in text, text
    assert sent["text"] == text, "the Slack-style text holds the subject and the body"
    if condition.prepare is stalled:  # the action that finished is not stalled
        assert not [n for n in received(system) if f"#{FINISHED}" in str(n.get("subject"))]
    if condition.prepare is dead_jobs_backlog:
        assert int(str(sent["subject"]).split("]")[1].split()[0]) >= 3, sent["subject"]
