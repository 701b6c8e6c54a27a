"""The alert automations ``make deploy`` creates on the Prefect server, and the notification block they send to.

    python -m deployments.automations [--webhook-url URL] [--overwrite]

Six automations, each a trigger on one of bulkai's events (``core.events``) and a ``SendNotification`` action
that names the bulk action (or provider) and the figures that matter:

* failure ratio over threshold, slower than estimate, budget reached, provider circuit opened, dead-jobs backlog:
  reactive triggers on the event the engine, the breaker or the dead-job review emits once its threshold
  (from the ``OperationsPolicy`` block) is crossed, so the threshold lives in one place and the trigger stays
  simple;
* bulk action stalled: a proactive trigger, per bulk action (``for_each`` its resource id), that fires when an
  action that started, progressed or resumed has no progress, finished or paused event within the policy's
  ``stall_minutes`` (Prefect wants at least 10 s, and evaluates proactive triggers every 5 s by default).

Idempotent: an automation is found by name and updated in place when it differs (duplicates left by hand are
removed); one that already matches is left alone, and an operator who disabled one in the UI keeps it
disabled.  Re-run it after editing the policy's thresholds.

The notification block is the one named in the policy (``notification_block``, by default ``bulkai-alerts``),
of any type that can notify (a Slack Webhook block saved under that name works as well).  When no such block
exists it saves a **Custom Webhook** block (``CustomWebhookNotificationBlock``): Prefect's ``Webhook`` block
has no ``notify`` and cannot be an automation's notification target, and the Apprise-based blocks each speak
one service's format, while the custom webhook POSTs a JSON body of our choosing (``subject``, ``body`` and a
Slack-style ``text``) to any URL.  Its URL comes from ``--webhook-url``, else ``BULKAI_ALERT_WEBHOOK_URL``, else
the local sandbox's receiver (``make sandbox``: ``http://127.0.0.1:8765/alerts``).  An existing block is never
changed, so what an operator entered in the UI stays, unless ``--overwrite``.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast
from uuid import UUID

from prefect.blocks.notifications import CustomWebhookNotificationBlock
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.events.actions import SendNotification
from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture

from blocks.operations import AlertThresholds, OperationsPolicy, load_operations_policy
from core import events

WEBHOOK_URL_ENV = "BULKAI_ALERT_WEBHOOK_URL"
#: the receiver of `make sandbox` (sandbox/alerts.py): where the offline demo's alerts go
LOCAL_RECEIVER = "http://127.0.0.1:8765/alerts"
#: Prefect's floor for a proactive trigger's window
MIN_PROACTIVE = timedelta(seconds=10)
#: what the custom webhook posts (Prefect fills {{subject}} and {{body}}); ``text`` is what Slack reads
WEBHOOK_JSON = {"subject": "{{subject}}", "body": "{{body}}", "text": "{{subject}}\n{{body}}"}

_ACTIONS: dict[str, str | list[str]] = {"prefect.resource.id": "bulkai.bulk-action.*"}
_CIRCUITS: dict[str, str | list[str]] = {"prefect.resource.id": "bulkai.provider-circuit.*"}
_DEAD_JOBS: dict[str, str | list[str]] = {"prefect.resource.id": "bulkai.dead-jobs"}
_EACH = {"prefect.resource.id"}
# Jinja (rendered by the server when the automation fires): the event's resource and payload
_WHO = "{{ event.resource.name }} (created by {{ event.resource['bulkai.created-by'] or 'unknown' }})"
_RUN = "{% for r in event.related %}{% if r.role == 'flow-run' %} Flow run: {{ r.id }}.{% endif %}{% endfor %}"


@dataclass(frozen=True)
class Alert:
    name: str
    description: str
    trigger: EventTrigger
    subject: str
    body: str


def alerts(thresholds: AlertThresholds) -> list[Alert]:
    """The six alerts, their windows and descriptions taken from the policy's thresholds."""
    stall = max(timedelta(minutes=thresholds.stall_minutes), MIN_PROACTIVE)
    minutes = f"{stall.total_seconds() / 60:g}"
    return [
        Alert(
            "bulkai: failure ratio over threshold",
            f"A bulk action's failed share of processed companies passed {thresholds.failure_ratio:g} "
            f"(after at least {thresholds.failure_min_processed} processed).",
            EventTrigger(expect={events.FAILURE_RATIO_EXCEEDED}, match=_ACTIONS, for_each=_EACH),
            "[bulkai] {{ event.resource.name }}: failure ratio {{ event.payload.failure_ratio }} "
            "over {{ event.payload.threshold }}",
            "Bulk action " + _WHO + ": {{ event.payload.failed }} of {{ event.payload.processed }} processed "
            "companies failed (ratio {{ event.payload.failure_ratio }}, threshold {{ event.payload.threshold }})."
            + _RUN,
        ),
        Alert(
            "bulkai: bulk action stalled",
            f"A running bulk action sent no progress event for {minutes} minutes.",
            EventTrigger(
                after={events.STARTED, events.PROGRESS, events.RESUMED},
                expect={events.PROGRESS, events.FINISHED, events.PAUSED},
                match=_ACTIONS,
                for_each=_EACH,
                posture=Posture.Proactive,
                threshold=1,
                within=stall,
            ),
            "[bulkai] {{ event.resource.name }}: no progress for " + minutes + " minutes",
            "Bulk action " + _WHO + " has sent no progress event since its {{ event.event }} event at "
            "{{ event.occurred }} (" + minutes + " minutes): processed {{ event.payload.processed | default(0) }} "
            "of {{ event.payload.total }}." + _RUN,
        ),
        Alert(
            "bulkai: slower than estimate",
            f"A bulk action's run took more than {thresholds.slow_factor:g} times its estimate.",
            EventTrigger(expect={events.SLOW}, match=_ACTIONS, for_each=_EACH),
            "[bulkai] {{ event.resource.name }}: {{ event.payload.factor }}x slower than its estimate",
            "Bulk action " + _WHO + " has run {{ event.payload.elapsed_seconds }} s against an estimate of "
            "{{ event.payload.estimated_seconds }} s (factor {{ event.payload.factor }})." + _RUN,
        ),
        Alert(
            "bulkai: budget reached",
            "A bulk action stopped at its budget (it is paused; raise the budget and resume it).",
            EventTrigger(expect={events.BUDGET_REACHED}, match=_ACTIONS, for_each=_EACH),
            "[bulkai] {{ event.resource.name }}: budget reached "
            "({{ event.payload.spent_usd }} of {{ event.payload.budget_usd }} USD)",
            "Bulk action " + _WHO + " reached its budget and is paused: spent {{ event.payload.spent_usd }} USD "
            "of {{ event.payload.budget_usd }} USD. Reason: {{ event.payload.reason }}." + _RUN,
        ),
        Alert(
            "bulkai: provider circuit opened",
            "A provider's circuit breaker opened: no calls go to it until a probe succeeds.",
            EventTrigger(expect={events.CIRCUIT_OPENED}, match=_CIRCUITS),
            "[bulkai] provider circuit {{ event.payload.tag }} opened",
            "The circuit of provider {{ event.payload.tag }} opened: {{ event.payload.reason }} "
            "({{ event.payload.consecutive_failures }} failures in a row, outage so far "
            "{{ event.payload.outage_seconds }} s). Calls wait for the cool-down and a successful probe.",
        ),
        Alert(
            "bulkai: dead-jobs backlog",
            f"More than {thresholds.dead_jobs_open} open dead jobs at a dead-job review.",
            EventTrigger(expect={events.DEAD_JOBS_BACKLOG}, match=_DEAD_JOBS),
            "[bulkai] {{ event.payload.open }} open dead jobs (threshold {{ event.payload.threshold }})",
            "{{ event.payload.open }} dead jobs are open, past the threshold of {{ event.payload.threshold }}. "
            "By action:{% for action, count in event.payload.by_action.items() %} {{ action }}: {{ count }}"
            "{% if not loop.last %},{% endif %}{% endfor %}. The dead-job-review deployment requeues or flags them.",
        ),
    ]


def automation(alert: Alert, block_document_id: UUID) -> AutomationCore:
    return AutomationCore(
        name=alert.name,
        description=alert.description,
        enabled=True,
        trigger=alert.trigger,
        actions=[SendNotification(block_document_id=block_document_id, subject=alert.subject, body=alert.body)],
    )


def notification_block_id(client: SyncPrefectClient, name: str) -> UUID | None:
    """The block document named ``name`` among the block types that can notify (any of them), or None."""
    response = client.request(
        "POST",
        "/block_documents/filter",
        json={
            "block_documents": {"name": {"any_": [name]}, "is_anonymous": {"eq_": False}},
            "block_schemas": {"block_capabilities": {"all_": ["notify"]}},
            "include_secrets": False,
        },
    )
    found: list[dict[str, Any]] = response.json()
    return UUID(found[0]["id"]) if found else None


def ensure_notification_block(name: str, url: str, *, overwrite: bool = False) -> tuple[UUID, bool]:
    """The notification block's id, saving a custom webhook to ``url`` when none exists (or ``overwrite``);
    returns (id, saved)."""
    with get_client(sync_client=True) as client:
        existing = notification_block_id(client, name)
    if existing is not None and not overwrite:
        return existing, False
    block = CustomWebhookNotificationBlock(name=name, url=url, json_data=WEBHOOK_JSON, headers=None, cookies=None)
    return cast(UUID, block.save(name, overwrite=True)), True


def _comparable(automation: AutomationCore) -> dict[str, Any]:
    """The automation as JSON, with its triggers' event sets in one order: ``expect`` and ``after`` are sets,
    which serialize in an order that changes from process to process (string hashing is randomized), so
    without this an unchanged automation looked changed every other deploy."""
    dumped: dict[str, Any] = AutomationCore.model_validate(automation.model_dump()).model_dump(mode="json")
    normalised: dict[str, Any] = _sorted_sets(dumped)
    return normalised


def _sorted_sets(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: sorted(item) if key in _SET_FIELDS and isinstance(item, list) else _sorted_sets(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_sorted_sets(item) for item in value]
    return value


_SET_FIELDS = frozenset({"expect", "after"})


def apply_automations(wanted: list[AutomationCore]) -> dict[str, str]:
    """Create or update each automation by name; returns name → created / updated / unchanged."""
    outcome: dict[str, str] = {}
    with get_client(sync_client=True) as client:
        for target in wanted:
            existing = client.read_automations_by_name(target.name)  # the most recently updated first
            if not existing:
                client.create_automation(target)
                outcome[target.name] = "created"
                continue
            keep, *duplicates = existing
            for duplicate in duplicates:
                client.delete_automation(duplicate.id)
            target = target.model_copy(update={"enabled": keep.enabled})  # an operator's switch stays
            current = AutomationCore.model_validate(keep.model_dump(exclude={"id"}))
            if _comparable(current) == _comparable(target) and not duplicates:
                outcome[target.name] = "unchanged"
                continue
            # the client sends only fields set explicitly: re-validated from a full dump, every field is (but the
            # owner, which an update may not carry)
            full = AutomationCore.model_validate(target.model_dump(mode="json", exclude={"owner_resource"}))
            client.update_automation(keep.id, full)
            outcome[target.name] = "updated"
    return outcome


def deploy_alerts(
    *, webhook_url: str | None = None, overwrite: bool = False, policy: OperationsPolicy | None = None
) -> dict[str, str]:
    """The notification block and the six automations; returns what happened to each."""
    OperationsPolicy.register_type_and_schema()  # editable in the UI even before a document is saved
    policy = policy or load_operations_policy()
    url = webhook_url or os.environ.get(WEBHOOK_URL_ENV) or LOCAL_RECEIVER
    block_id, saved = ensure_notification_block(policy.notification_block, url, overwrite=overwrite)
    outcome = {f"block {policy.notification_block}": "saved" if saved else "kept"}
    outcome.update(apply_automations([automation(a, block_id) for a in alerts(policy.alerts)]))
    return outcome


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--webhook-url", help=f"the webhook the block posts to (else ${WEBHOOK_URL_ENV})")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing notification block")
    args = parser.parse_args(argv)
    for name, what in deploy_alerts(webhook_url=args.webhook_url, overwrite=args.overwrite).items():
        print(f"{name}: {what}")


if __name__ == "__main__":
    main()
