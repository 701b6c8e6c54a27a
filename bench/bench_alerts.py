"""How long an alert takes from its condition to the webhook: ``alert_latency_seconds`` (the maximum).

A real ``prefect server start`` (SQLite, in a temporary home, the settings ``make server`` gives it), the alert
automations created by ``python -m deployments.automations`` (its custom webhook pointed at the sandbox's
``/alerts`` receiver, an ``OperationsPolicy`` saved first with ``stall_minutes`` at Prefect's floor of 10 s),
then, from a process of its own as the engine sends them, ``ROUNDS`` rounds of every alert's event
(``tasks.events.emit``): failure ratio exceeded, slower than estimate, budget reached, circuit opened and
dead-jobs backlog, and a ``started`` event that nothing follows (a stall).

The condition becomes true when the event is emitted (the engine emits it the moment it decides the threshold
is crossed), and for a stall ``stall_minutes`` after the last event; the latency is from then to the moment the
receiver got the notification.  The figure is the maximum over every alert of every round (the median is
printed too), so one slow automation cannot hide behind fast ones.  The temporary server ``python -m bench``
starts is not used: automations need the server's triggers and actions services, as a deployed server runs them.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

ROUNDS = 3
STALL_SECONDS = 10.0  # Prefect's minimum window for a proactive trigger
TIMEOUT = 120.0

EMIT = """\
import json
import sys
import time

from blocks.operations import AlertThresholds, OperationsPolicy
from core import events
from deployments.automations import deploy_alerts
from tasks.events import emit, emit_action_event

receiver, rounds, stall_minutes = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
policy = OperationsPolicy(alerts=AlertThresholds(stall_minutes=stall_minutes))
policy.save("default", overwrite=True)
print(json.dumps({"deployed": deploy_alerts(webhook_url=receiver, policy=policy)}), flush=True)
for r in range(rounds):
    base = 900_000 + 10 * r
    sent = {}
    sent[f"#{base + 1}"] = time.time()
    emit_action_event(events.FAILURE_RATIO_EXCEEDED, bulk_action_id=base + 1, action="score_llm_adoption",
                      failure_ratio=0.5, threshold=0.2, processed=40, failed=20)
    sent[f"#{base + 2}"] = time.time()
    emit_action_event(events.SLOW, bulk_action_id=base + 2, action="enrich_companies",
                      elapsed_seconds=120.0, estimated_seconds=40.0, factor=3.0)
    sent[f"#{base + 3}"] = time.time()
    emit_action_event(events.BUDGET_REACHED, bulk_action_id=base + 3, action="score_llm_adoption",
                      reason="budget", spent_usd=0.01, budget_usd=0.01)
    sent[f"bench-tag-{r}"] = time.time()
    emit(events.CIRCUIT_OPENED, events.circuit_resource(f"bench-tag-{r}"),
         {"tag": f"bench-tag-{r}", "reason": "5xx", "consecutive_failures": 3, "outage_seconds": 1.0})
    sent[f"{1000 + r} open dead jobs"] = time.time()
    emit(events.DEAD_JOBS_BACKLOG, events.dead_jobs_resource(),
         {"open": 1000 + r, "threshold": 100, "by_action": {"enrich_companies": 1000 + r}})
    sent[f"#{base + 4}"] = time.time() + stall_minutes * 60  # a stall: true once the window has passed
    emit_action_event(events.STARTED, bulk_action_id=base + 4, action="generate_embeddings", total=10,
                      estimated_seconds=None)
    print(json.dumps({"sent": sent}), flush=True)
    time.sleep(1)  # rounds apart, as real conditions are
"""  # noqa: E501 - a script, kept readable as one block


def run() -> dict[str, float]:
    import httpx

    from deployments.server_settings import with_server_settings
    from sandbox.server import SandboxServer
    from tests.e2e.deployed import PREFECT, Processes, free_port, run_cli, user_env, wait_for

    with tempfile.TemporaryDirectory(prefix="bulkai-bench-alerts-") as tmp, SandboxServer(port=0) as sandbox:
        home = Path(tmp)
        (home / "logs").mkdir()
        processes = Processes(home / "logs")
        port = free_port()
        env = user_env(f"http://127.0.0.1:{port}/api", home)
        server_env = {**with_server_settings({**env}), "PREFECT_UI_ENABLED": "false"}
        del server_env["PREFECT_API_URL"]
        try:
            processes.start("server", [*PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                            server_env)  # fmt: skip

            def up() -> bool:
                try:
                    return httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=5).status_code == 200
                except httpx.HTTPError:
                    return False

            wait_for(up, 180, "the Prefect server", interval=0.5)
            receiver = f"{sandbox.url}/alerts"
            output = run_cli([sys.executable, "-c", EMIT, receiver, str(ROUNDS), str(STALL_SECONDS / 60)], env)
            lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
            deployed = next(line["deployed"] for line in lines if "deployed" in line)
            sent = {k: float(v) for line in lines if "sent" in line for k, v in line["sent"].items()}
            print(f"  automations: {deployed}")

            def all_received() -> dict[str, float] | None:
                got = _received(sandbox.client.get("/alerts").json(), sent)
                return got if len(got) == len(sent) else None

            try:
                found = wait_for(all_received, TIMEOUT, "every alert's notification", interval=0.1)
            except AssertionError:
                got = _received(sandbox.client.get("/alerts").json(), sent)
                raise RuntimeError(
                    f"no notification for {sorted(set(sent) - set(got))}; server log:\n" + processes.tail("server", 60)
                ) from None
        finally:
            processes.kill_all()
    latencies = {marker: found[marker] - sent[marker] for marker in sent}
    for marker, seconds in sorted(latencies.items(), key=lambda item: -item[1]):
        print(f"  {marker:28s} {seconds:6.2f} s")
    print(f"  median {statistics.median(latencies.values()):.2f} s over {len(latencies)} alerts")
    return {"alert_latency_seconds": max(latencies.values())}


def _received(entries: list[dict[str, Any]], sent: dict[str, float]) -> dict[str, float]:
    """marker → when the first notification whose subject names it arrived."""
    found: dict[str, float] = {}
    for entry in entries:
        body = entry.get("body")
        subject = str(body.get("subject", "")) if isinstance(body, dict) else ""
        for marker in sent:
            if marker in subject and marker not in found:
                found[marker] = float(entry["received_at"])
    return found
