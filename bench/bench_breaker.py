"""Benchmark: a 30-second provider outage in the middle of an action, held by the circuit breaker.

``generate_embeddings`` over 1,500 companies on an OpenAI-compatible provider at the sandbox (4 slots, 40 ms a
call); once 20 calls have been served the sandbox answers 503 to everything for 30 s.  The breaker (cool-down
10 s, one probe) must open, keep every call but the probes away from the provider, lose no company, and let the
action go on as soon as the provider is back.

- ``breaker_calls_while_open``: requests that reached the provider while its breaker was open or half-open
  (open spells from 0.1 s after each opening, so a call already admitted when it opened is not counted; the
  probes included), divided by the probes the configuration allowed (one per half-open spell).  Target <= 1.0.
- ``breaker_dead_jobs_from_outage``: the action's dead jobs (no other fault is injected).  Target 0.
- ``breaker_recovery_seconds``: from the end of the outage to the first call answered 200 again.  Target <=
  cool-down + 5 = 15 s.
"""

from __future__ import annotations

import contextvars
import threading
import time
from typing import Any

TAG = "breaker-bench"
COMPANIES = 1_500
OUTAGE_SECONDS = 30.0
COOLDOWN_SECONDS = 10.0
PROBES = 1


def run() -> dict[str, float]:
    from bench.environment import seed
    from blocks.embeddings import OpenAICompatibleEmbeddings
    from blocks.loading import clear_block_cache, load_database
    from blocks.operations import BreakerSettings, OperationsPolicy
    from core import circuit
    from core.operations_tables import CircuitState
    from core.schema import DeadJob, utcnow
    from deployments.provision_limits import provision_limits
    from flows.engine import BulkActionSummary
    from flows.generate_embeddings import generate_embeddings
    from sandbox.server import SandboxServer
    from tasks.circuit_guard import forget_guards

    db = load_database("default")
    ids = seed(COMPANIES, seed_value=16016)
    provision_limits({TAG: 4})
    settings = BreakerSettings(cooldown_seconds=COOLDOWN_SECONDS, probes=PROBES, pause_after_seconds=600)
    OperationsPolicy(breaker_by_tag={TAG: settings}).save("default", overwrite=True)
    clear_block_cache()
    forget_guards()
    with SandboxServer(port=0, config={"openai": {"latency_ms": 40}}) as sandbox:
        OpenAICompatibleEmbeddings(
            base_url=f"{sandbox.url}/v1",
            api_key="fake-openai-bench",  # type: ignore[arg-type]
            model="sandbox-embed",
            self_hosted=True,
            calls_per_batch=1,
            concurrency_tag=TAG,
        ).save("breaker-bench", overwrite=True)
        clear_block_cache()
        since = utcnow()
        out: list[Any] = []
        context = contextvars.copy_context()
        action = threading.Thread(
            target=lambda: out.append(
                context.run(
                    generate_embeddings,
                    company_ids=ids,
                    provider="openai-compatible-embeddings/breaker-bench",
                    created_by="bench",
                )
            ),
            daemon=True,
        )
        action.start()
        deadline = time.monotonic() + 120
        while len(_calls(sandbox)) < 20:
            if time.monotonic() > deadline or not action.is_alive():
                raise RuntimeError("the action made fewer than 20 calls before the outage could start")
            time.sleep(0.05)
        outage = sandbox.outage("openai", OUTAGE_SECONDS)
        action.join(timeout=600)
        if action.is_alive() or not out or not isinstance(out[0], BulkActionSummary):
            raise RuntimeError(f"the action did not complete: {out}")
        summary: BulkActionSummary = out[0]
        calls = _calls(sandbox)

    engine = db.get_engine()
    history = circuit.transitions(engine, TAG, since=since)
    spells = [
        (t.to_state, t.at.timestamp(), nxt.at.timestamp() if nxt is not None else time.time())
        for t, nxt in zip(history, [*history[1:], None], strict=True)
        if t.to_state in (CircuitState.OPEN, CircuitState.HALF_OPEN)
    ]
    half_open_spells = sum(1 for state, _, _ in spells if state == CircuitState.HALF_OPEN)
    # an open spell counts from 0.1 s after the opening (a call admitted just before it may still arrive); a
    # half-open spell from its first instant (its probe goes out at once)
    while_open = sum(
        1
        for r in calls
        if any(begin + (0.1 if state == CircuitState.OPEN else 0.0) < r["time"] < end for state, begin, end in spells)
    )
    recovered = [r["time"] for r in calls if r["status"] == 200 and r["time"] >= outage["end"]]
    with db.read_session() as session:
        dead = session.query(DeadJob).filter(DeadJob.bulk_action_id == summary.bulk_action_id).count()
    print(
        f"breaker: {summary.succeeded}/{summary.total} succeeded, transitions "
        f"{[(t.from_state, t.to_state) for t in history]}, {while_open} calls while open over "
        f"{half_open_spells} half-open spells"
    )
    if not half_open_spells:
        raise RuntimeError("the breaker never opened during the outage")
    return {
        "breaker_calls_while_open": while_open / (PROBES * half_open_spells),
        "breaker_dead_jobs_from_outage": float(dead),
        "breaker_recovery_seconds": round(min(recovered) - outage["end"], 2) if recovered else float("inf"),
    }


def _calls(sandbox: Any) -> list[dict[str, Any]]:
    return [r for r in sandbox.requests(provider="openai") if r["endpoint"] == "embeddings"]
