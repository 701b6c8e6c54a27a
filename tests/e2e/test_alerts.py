"""Issue #16's alerts end to end: each automation ``make deploy`` creates fires on the real server and the
notification reaches a webhook receiver the test reads (the sandbox's ``/alerts``, sandbox/alerts.py).

The deployed system ran ``python -m deployments.automations`` with its webhook pointed at the sandbox's receiver
(tests/e2e/deployed.py).  Here an operator lowers the thresholds in the ``OperationsPolicy`` block (a stall of
15 s, a backlog past 2 dead jobs, a failure-ratio verdict after 5 companies, a run 1.5 times its estimate, and a
breaker of 2 failures with a 3-s cool-down for the test's own provider tag) and runs it again, as the README
says: it updates what changed, and a third run changes nothing.  Then each alert's condition is brought about
for real, by a deployed action on a worker (``prefect deployment run``), on the test's own companies and its own
sandbox embeddings block (tag ``openai-e2e-alerts``), the sandbox misbehaving the way a provider does:

* **failure ratio**: ``generate-embeddings`` while the provider answers every request with a body that is not
  JSON (``malformed_json`` at rate 1.0): every company fails after its retries, and the engine emits the
  crossing once 5 are processed;
* **slower than estimate**: ``generate-embeddings`` while the provider takes 2 s per request; the dry-run
  estimator assumes 0.3 s per embeddings request (``core.estimate_model``), so the run passes 1.5 times its
  estimate and the engine's monitor emits it;
* **budget reached**: ``score-llm-adoption`` on the sandbox's GROQ block with a budget below one call's price:
  the engine reserves before it calls, so it pauses at once (paying nothing) and the run is *Suspended*;
* **circuit opened**: ``generate-embeddings`` and, once it runs, a 503 outage of 8 s: two failed attempts open
  the tag's breaker, which emits the event; its batches wait and finish after the outage;
* **stalled**: a quick action that finishes (it must not be reported), then ``generate-embeddings`` started
  inside a 45-s outage: the breaker opens on the first attempts, every batch waits, and after its
  ``started`` event (and the engine's first progress event, which reports 0 processed) nothing comes for the
  15-s window;
* **dead-jobs backlog**: three open dead jobs in the company database and a run of the ``dead-job-review``
  deployment on a worker (a dry run: it reports and emits, and changes nothing).

Each condition leaves the system as it found it: the sandbox's configuration, the breaker (closed by hand too),
the dead jobs its failures wrote, the suspended run (cancelled), the policy (restored at the end).

The receiver is polled with a timeout (the benchmark target is 60 s from condition to notification); a stall
needs its window first, and Prefect evaluates proactive triggers every 5 s.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import delete

from blocks.operations import AlertThresholds
from core import circuit
from core.schema import BulkActionStatus, DeadJob, DeadJobStatus
from deployments.automations import alerts
from tests.e2e.deployed import (
    FINAL_STATES,
    FLOW_RUN_TIMEOUT,
    PREFECT,
    Deployed,
    bulk_action_of,
    get_bulk_action,
    operations_policy,
    run_cli,
    seed_own_companies,
    wait_for,
)

pytestmark = pytest.mark.timeout(600)

NOTIFY_TIMEOUT = 60.0  # the alert_latency_seconds target
STALL_MINUTES = 0.25  # 15 s: Prefect's proactive floor is 10 s, evaluated every 5 s
DEAD_JOBS_THRESHOLD = 2
FAILURE_MIN_PROCESSED = 5
SLOW_FACTOR = 1.5
ALERT_NAMES = [a.name for a in alerts(AlertThresholds())]

#: the test's own embeddings block on the sandbox's OpenAI-compatible provider: its own tag (its own breaker and
#: limit, which no other test opens or fills), one call of 10 texts per batch, 2 batches in flight
PROVIDER, SANDBOX_PROVIDER = "openai-compatible-embeddings/alerts", "openai"
ALERT_TAG, ALERT_SLOTS = "openai-e2e-alerts", 2
BREAKER = {"consecutive_failures": 2, "cooldown_seconds": 3.0, "probes": 1, "pause_after_seconds": 300.0}
CREATOR = "e2e-alerts"
BUDGET_USD = 0.0005  # above one GROQ call's worst case (0.00043, else the run is refused), below 2 companies' 20 calls

# The test's own companies (seeded by the module), and what each condition uses
N_OWN = 130
FAILING, SLOW, BUDGET, CIRCUIT, FINISHED, STALLED = (
    slice(0, 20), slice(20, 40), slice(40, 42), slice(42, 102), slice(102, 112), slice(112, 130),
)  # fmt: skip


ALERT_BLOCKS = """\
import sys

from prefect.client.orchestration import get_client
from pydantic import SecretStr

from blocks.embeddings import OpenAICompatibleEmbeddings

url, tag, slots = sys.argv[1], sys.argv[2], int(sys.argv[3])
OpenAICompatibleEmbeddings(
    base_url=url + "/v1",
    api_key=SecretStr("sk-e2e-alerts-secret-0123456789"),
    model="sandbox-embed",
    self_hosted=True,
    concurrency_tag=tag,
    calls_per_batch=1,
).save("alerts", overwrite=True)
with get_client(sync_client=True) as client:
    client.upsert_global_concurrency_limit_by_name("tag:" + tag, slots)
"""


# --- the receiver, the policy and the system ------------------------------------------------------------------


def received(system: Deployed) -> list[dict[str, Any]]:
    """Every notification the receiver got: the custom webhook's JSON (subject, body, text)."""
    entries: list[dict[str, Any]] = system.sandbox.client.get("/alerts").json()
    return [entry["body"] for entry in entries if isinstance(entry.get("body"), dict)]


def naming(system: Deployed, *texts: str, after: int = 0) -> list[dict[str, Any]]:
    """The notifications (from the ``after``-th on) whose subject holds every one of ``texts``."""
    return [n for n in received(system)[after:] if all(text in str(n.get("subject")) for text in texts)]


def notification(
    system: Deployed, texts: tuple[str, ...], timeout: float = NOTIFY_TIMEOUT, after: int = 0
) -> dict[str, Any]:
    """The first notification (from the ``after``-th on) whose subject holds every one of ``texts``, once it
    arrives."""

    def found() -> dict[str, Any] | None:
        return next(iter(naming(system, *texts, after=after)), None)

    try:
        return wait_for(found, timeout, f"a notification naming {texts!r}", interval=0.25)
    except AssertionError as timed_out:
        subjects = [str(n.get("subject")) for n in received(system)[after:]]
        raise AssertionError(f"{timed_out}; the receiver got: {subjects}") from None


def deploy_alerts(system: Deployed) -> dict[str, str]:
    """``python -m deployments.automations`` as ``make deploy`` runs it; what it says it did, by name."""
    output = run_cli([sys.executable, "-m", "deployments.automations"], system.env)
    return dict(line.rsplit(": ", 1) for line in output.splitlines() if ": " in line)


@dataclass(frozen=True)
class Alerting:
    """What the module fixture set up: the two re-deploys' outcomes and the test's own companies."""

    first: dict[str, str]
    second: dict[str, str]
    companies: list[int]


@pytest.fixture(scope="module")
def alerting(system: Deployed) -> Iterator[Alerting]:
    """The operator's low thresholds saved and the automations re-deployed twice, the test's block and
    companies; the policy restored after."""
    system.ensure_workers()
    run_cli([sys.executable, "-c", ALERT_BLOCKS, system.sandbox.url, ALERT_TAG, str(ALERT_SLOTS)], system.env)
    companies = seed_own_companies(system, N_OWN, 16116)

    def change(data: dict[str, Any]) -> dict[str, Any]:
        alerts_data = {
            **data.get("alerts", {}),
            "stall_minutes": STALL_MINUTES,
            "dead_jobs_open": DEAD_JOBS_THRESHOLD,
            "failure_min_processed": FAILURE_MIN_PROCESSED,
            "slow_factor": SLOW_FACTOR,
        }
        breakers = {**data.get("breaker_by_tag", {}), ALERT_TAG: BREAKER}
        return {**data, "alerts": alerts_data, "breaker_by_tag": breakers}

    with operations_policy(system, change):
        yield Alerting(deploy_alerts(system), deploy_alerts(system), companies)


@contextmanager
def sandbox_settings(system: Deployed, **settings: Any) -> Iterator[None]:
    """The sandbox provider configured with ``settings`` for the block; what it had before, restored after."""
    before = system.sandbox.get_config()[SANDBOX_PROVIDER]
    system.sandbox.configure(SANDBOX_PROVIDER, **settings)
    try:
        yield
    finally:
        system.sandbox.configure(SANDBOX_PROVIDER, **{key: before[key] for key in settings})


def embed(system: Deployed, ids: list[int]) -> str:
    """``prefect deployment run generate-embeddings/generate-embeddings`` on the test's block; the flow run id."""
    return system.deployment_run(
        "generate-embeddings/generate-embeddings", company_ids=ids, provider=PROVIDER, created_by=CREATOR
    )


def running_action(system: Deployed, run_id: str) -> int:
    """The flow run's bulk action, once it runs."""

    def running() -> int | None:
        record = bulk_action_of(system.db, run_id)
        return record.id if record is not None and record.status is BulkActionStatus.RUNNING else None

    try:
        return wait_for(running, FLOW_RUN_TIMEOUT, f"flow run {run_id}'s bulk action to run", interval=0.1)
    except AssertionError as timed_out:
        raise AssertionError(f"{timed_out}\n{system.explain(system.flow_run(run_id))}") from None


def action_of(system: Deployed, run_id: str) -> int:
    record = bulk_action_of(system.db, run_id)
    assert record is not None, system.explain(system.flow_run(run_id))
    return record.id


def close_breaker(system: Deployed) -> None:
    circuit.reset(system.db.get_engine(), ALERT_TAG, datetime.now(UTC))


# --- the conditions -------------------------------------------------------------------------------------------


@dataclass
class Prepared:
    """A condition brought about: texts only its notification's subject holds (the bulk action's id is known
    only now), more texts its notification must hold, and what puts the system back."""

    subject: tuple[str, ...]
    says: tuple[str, ...] = ()
    cleanup: Callable[[], None] = field(default=lambda: None)


@dataclass(frozen=True)
class Condition:
    """How one alert's condition is brought about, and what its notification must say."""

    alert: str  # the automation's name
    prepare: Callable[[Deployed, list[int]], Prepared]
    says: tuple[str, ...]  # texts its subject or body must hold
    timeout: float = NOTIFY_TIMEOUT


def failure_ratio(system: Deployed, companies: list[int]) -> Prepared:
    """Every answer unparsable: each company fails after its retries (not an outage: the breaker stays shut)."""
    ids = companies[FAILING]
    with sandbox_settings(system, faults=[{"kind": "malformed_json", "rate": 1.0}]):
        run_id = embed(system, ids)
        run = system.wait_for_final(run_id)
    assert run["state_type"] == "FAILED", system.explain(run)
    bulk_action_id = action_of(system, run_id)
    record = get_bulk_action(system.db, bulk_action_id)
    assert record.status is BulkActionStatus.FAILED and record.failed == len(ids), record.status_reason

    def cleanup() -> None:  # no later dead-job review may find them
        with system.db.session() as session:
            session.execute(delete(DeadJob).where(DeadJob.company_id.in_(ids)))

    return Prepared((f"#{bulk_action_id}: failure ratio",), cleanup=cleanup)


def slower_than_estimate(system: Deployed, companies: list[int]) -> Prepared:
    """2 s per request where the estimator assumes 0.3 s: 2 batches in flight, each one call."""
    with sandbox_settings(system, latency_ms=2000):
        run_id = embed(system, companies[SLOW])
        system.expect_completed(run_id)
    bulk_action_id = action_of(system, run_id)
    estimate = float((get_bulk_action(system.db, bulk_action_id).parameters or {})["estimated_seconds"])
    assert 0 < estimate < 2 / SLOW_FACTOR, estimate
    return Prepared((f"#{bulk_action_id}: ", "slower than its estimate"), ("s against an estimate of",))


def budget_reached(system: Deployed, companies: list[int]) -> Prepared:
    """A scoring of 2 companies (20 calls) on the sandbox's GROQ block with a budget of about one call's worst
    case: the engine reserves each call's worst case before it calls, so it stops after a call or two, pauses,
    and its flow run is *Suspended* (cancelled after).  A budget below one call's worst case is refused at the
    start (an ``InputError``: the run fails, nothing pauses)."""
    run_id = system.deployment_run(
        "score-llm-adoption/score-llm-adoption",
        company_ids=companies[BUDGET],
        provider="groq-llm/sandbox",
        budget_usd=BUDGET_USD,
        created_by=CREATOR,
    )

    def suspended() -> bool:
        run = system.flow_run(run_id)
        if run["state_type"] in FINAL_STATES:
            raise AssertionError(system.explain(run))
        return bool(run["state_type"] == "PAUSED" and run["state_name"] == "Suspended")

    try:
        wait_for(suspended, FLOW_RUN_TIMEOUT, "the budget-stopped run to suspend", interval=0.5)
    except AssertionError as timed_out:
        raise AssertionError(f"{timed_out}\n{system.explain(system.flow_run(run_id))}") from None
    bulk_action_id = action_of(system, run_id)
    record = get_bulk_action(system.db, bulk_action_id)
    assert record.status is BulkActionStatus.PAUSED and "budget" in (record.status_reason or ""), record

    def cleanup() -> None:  # nothing left waiting for later tests
        run_cli([*PREFECT, "flow-run", "cancel", run_id], system.env)
        wait_for(lambda: system.flow_run(run_id)["state_type"] == "CANCELLED", 60, "the suspended run to cancel")

    return Prepared((f"#{bulk_action_id}: budget reached",), cleanup=cleanup)


def circuit_opened(system: Deployed, companies: list[int]) -> Prepared:
    """An 8-s outage once the action runs: two failed attempts open the breaker, the batches wait for it and
    finish after the outage (no company fails)."""
    ids = companies[CIRCUIT]
    with sandbox_settings(system, latency_ms=500):  # 6 batches of 0.5 s: under way when the outage starts
        run_id = embed(system, ids)
        try:
            running_action(system, run_id)
            system.sandbox.outage(SANDBOX_PROVIDER, 8.0)
            system.expect_completed(run_id)
        finally:
            close_breaker(system)
    record = get_bulk_action(system.db, action_of(system, run_id))
    assert (record.succeeded, record.failed) == (len(ids), 0), record.status_reason
    return Prepared((f"circuit {ALERT_TAG} opened",))


def stalled(system: Deployed, companies: list[int]) -> Prepared:
    """A quick action that finishes (it must not be reported), then one started inside a 45-s outage: every batch
    waits for the breaker, so nothing follows its started event but the monitor's first progress event, which
    says 0 processed (``ActionEvents`` counts its first tick as a move from -1)."""
    finished = embed(system, companies[FINISHED])
    system.expect_completed(finished)
    finished_id = action_of(system, finished)
    system.sandbox.outage(SANDBOX_PROVIDER, 45.0)
    run_id = embed(system, companies[STALLED])
    try:
        bulk_action_id = running_action(system, run_id)
    except BaseException:
        close_breaker(system)
        raise

    def cleanup() -> None:  # the outage ends, a probe closes the breaker and the action finishes
        try:
            system.expect_completed(run_id, timeout=FLOW_RUN_TIMEOUT)
        finally:
            close_breaker(system)
        assert not naming(system, f"#{finished_id}: no progress"), "the action that finished is not stalled"

    return Prepared((f"#{bulk_action_id}: no progress",), (f"processed 0 of {STALLED.stop - STALLED.start}.",), cleanup)


def dead_jobs_backlog(system: Deployed, companies: list[int]) -> Prepared:
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
    return Prepared(("open dead jobs (threshold 2)",))


CONDITIONS = [
    Condition(
        "bulkai: failure ratio over threshold", failure_ratio,
        ("failure ratio 1.0 over 0.2", "processed companies failed", f"created by {CREATOR}"),
    ),
    Condition(
        "bulkai: slower than estimate", slower_than_estimate,
        ("slower than its estimate", f"created by {CREATOR}"),
    ),
    Condition(
        "bulkai: budget reached", budget_reached,
        (f" of {BUDGET_USD:g} USD)", f"created by {CREATOR}", "reached its budget and is paused", "Reason: "),
    ),
    Condition(
        "bulkai: provider circuit opened", circuit_opened,
        (f"The circuit of provider {ALERT_TAG} opened: 2 failures in a row; last: ProviderServerError", "(503)"),
    ),
    Condition(
        "bulkai: bulk action stalled", stalled,
        ("no progress for 0.25 minutes", "no progress event since its bulkai.bulk-action.", f"created by {CREATOR}"),
        timeout=STALL_MINUTES * 60 + NOTIFY_TIMEOUT,
    ),
    Condition("bulkai: dead-jobs backlog", dead_jobs_backlog, ("enrich_companies:",)),
]  # fmt: skip


# --- the tests ------------------------------------------------------------------------------------------------


def test_make_deploy_updates_the_automations_from_the_policy_and_changes_nothing_again(
    system: Deployed, alerting: Alerting
) -> None:
    first, second = alerting.first, alerting.second
    assert first["block bulkai-alerts"] == "kept", "the operator's notification block is never replaced"
    assert first["bulkai: bulk action stalled"] == "updated", first  # its window comes from the policy
    assert first["bulkai: failure ratio over threshold"] == "updated", first  # its description too
    assert first["bulkai: budget reached"] == "unchanged", first  # nothing of it is in the policy
    stalls = [a for a in system.api("POST", "/automations/filter", json={}) if a["name"].endswith("stalled")]
    assert {second[name] for name in ALERT_NAMES} == {"unchanged"}, (second, stalls)
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
    system: Deployed, alerting: Alerting, condition: Condition
) -> None:
    seen = len(received(system))  # only what this condition brings counts (a breaker re-opens on failed probes)
    prepared = condition.prepare(system, alerting.companies)
    try:
        sent = notification(system, prepared.subject, condition.timeout, after=seen)
        text = f"{sent['subject']}\n{sent['body']}"
        for expected in (*condition.says, *prepared.says):
            assert expected in text, text
        assert sent["text"] == text, "the Slack-style text holds the subject and the body"
        if condition.prepare is slower_than_estimate:
            factor = float(re.findall(r"([0-9.]+)x slower", str(sent["subject"]))[0])
            assert factor > SLOW_FACTOR, sent["subject"]
        if condition.prepare is failure_ratio:
            failed, processed = map(int, re.findall(r"(\d+) of (\d+) processed companies failed", text)[0])
            assert failed == processed >= FAILURE_MIN_PROCESSED, text
        if condition.prepare is dead_jobs_backlog:
            assert int(str(sent["subject"]).split("]")[1].split()[0]) >= 3, sent["subject"]
    finally:
        prepared.cleanup()
