"""Fault injection as clients meet it: server errors, drops, timeouts, broken bodies and outputs."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import anthropic
import httpx
import pytest

from sandbox.generate import LEVELS
from sandbox.server import SandboxServer

from .conftest import Driver

LEVEL_PROMPT = "Rate the level of AI adoption of Acme BV."


def _wait_for_log(sandbox: SandboxServer, provider: str, count: int, deadline_s: float = 5.0) -> list[Any]:
    """Poll the request log until ``count`` entries of ``provider`` are there (written when requests end)."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        log = sandbox.requests(provider=provider)
        if len(log) >= count:
            return log
        time.sleep(0.02)
    raise AssertionError(f"only {len(log)} {provider} requests logged")


def test_5xx_times_then_success(sandbox: SandboxServer, driver: Driver) -> None:
    sandbox.configure("groq", faults=[{"kind": "5xx", "times": 2, "status": 503}])
    first, second, third = (driver.chat(LEVEL_PROMPT) for _ in range(3))
    assert [first.status_code, second.status_code, third.status_code] == [503, 503, 200]
    assert first.json()["error"]["type"] == "internal_server_error"
    assert first.headers["x-sandbox"] == "true"
    groq = sandbox.stats(log=False)["providers"]["groq"]
    assert groq["faults"] == {"5xx": 2} and groq["fault_rules_fired"] == [2] and groq["accepted"] == 3


def test_5xx_with_sdk(sandbox: SandboxServer, claude: anthropic.Anthropic) -> None:
    sandbox.configure("anthropic", faults=[{"kind": "5xx", "status": 529, "times": 1}])
    with pytest.raises(anthropic.APIStatusError) as caught:
        claude.messages.create(model="m", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    assert caught.value.status_code == 529
    assert caught.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]
    claude.messages.create(model="m", max_tokens=10, messages=[{"role": "user", "content": "x"}])


def test_match_poisons_one_company(sandbox: SandboxServer, driver: Driver) -> None:
    sandbox.configure("parallel", job_duration_s=0, faults=[{"kind": "5xx", "match": "poison.example"}])
    for _ in range(2):
        assert driver.create_run({"name": "Poison", "website": "https://poison.example"}).status_code == 500
    healthy = driver.create_run({"name": "Healthy", "website": "https://healthy.example"})
    assert healthy.status_code == 202
    assert driver.run_result(healthy.json()["run_id"]).status_code == 200  # polls do not match the rule
    poisoned = sandbox.requests(provider="parallel", contains="poison.example")
    assert [entry["status"] for entry in poisoned] == [500, 500]
    assert all(entry["fault"] == "5xx" for entry in poisoned)


def test_rate_is_deterministic_per_seed(sandbox: SandboxServer, driver: Driver) -> None:
    def pattern() -> list[int]:
        return [driver.chat(f"prompt {i}").status_code for i in range(16)]

    sandbox.configure("groq", seed=7, faults=[{"kind": "5xx", "rate": 0.5}])
    first = pattern()
    assert set(first) == {200, 500}
    sandbox.reset()  # restarts the rule counters and reseeds the RNG
    assert pattern() == first
    sandbox.configure("groq", seed=8)
    assert pattern() != first


def test_drop_closes_the_connection(
    sandbox: SandboxServer, driver: Driver, claude: anthropic.Anthropic, caplog: pytest.LogCaptureFixture
) -> None:
    sandbox.configure("groq", faults=[{"kind": "drop", "times": 1}])
    sandbox.configure("anthropic", faults=[{"kind": "drop", "times": 1}])
    with caplog.at_level(logging.ERROR):
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            driver.chat(LEVEL_PROMPT)
        assert driver.chat(LEVEL_PROMPT).status_code == 200
        with pytest.raises(anthropic.APIConnectionError):
            claude.messages.create(model="m", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    assert not [r for r in caplog.records if r.name.startswith("uvicorn")]  # no "Exception in ASGI app"
    dropped = [e for e in sandbox.requests(provider="groq") if e["fault"] == "drop"]
    assert len(dropped) == 1 and dropped[0]["status"] == 0 and dropped[0]["delivered"] is False


def test_timeout_holds_the_answer(sandbox: SandboxServer, driver: Driver) -> None:
    sandbox.configure("groq", timeout_s=2, faults=[{"kind": "timeout", "times": 1}])
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        driver.chat(LEVEL_PROMPT, timeout=0.5)
    assert time.monotonic() - started < 1.5
    assert driver.chat(LEVEL_PROMPT).status_code == 200
    # The held request was processed but its answer was lost; the sandbox does not bill it (test_billing).
    log = _wait_for_log(sandbox, "groq", 2)
    held = next(e for e in log if e["fault"] == "timeout")
    assert held["status"] == 200 and held["delivered"] is False and held["duration_ms"] < 1900


def test_timeout_answers_late_when_client_waits(sandbox: SandboxServer, driver: Driver) -> None:
    sandbox.configure("workers_ai", timeout_s=0.3, faults=[{"kind": "timeout"}])
    started = time.monotonic()
    response = driver.workers_embed("Acme")
    assert response.status_code == 200 and time.monotonic() - started >= 0.3


def test_malformed_json(sandbox: SandboxServer, driver: Driver) -> None:
    sandbox.configure("workers_ai", faults=[{"kind": "malformed_json"}])
    response = driver.workers_embed("Acme")
    assert response.status_code == 200 and response.headers["x-sandbox"] == "true"
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content)


def test_invalid_output_groq(sandbox: SandboxServer, driver: Driver) -> None:
    sandbox.configure("groq", faults=[{"kind": "invalid_output"}])
    for i in range(6):
        content = driver.chat(f"{LEVEL_PROMPT} ({i})").json()["choices"][0]["message"]["content"]
        try:
            level = json.loads(content)["level"]
        except json.JSONDecodeError:
            continue
        assert level not in LEVELS


def test_invalid_output_parallel_and_embeddings(sandbox: SandboxServer, driver: Driver) -> None:
    sandbox.configure("parallel", job_duration_s=0, faults=[{"kind": "invalid_output", "match": "broken"}])
    broken = driver.run_result(driver.create_run("https://broken.example").json()["run_id"]).json()
    content = broken["output"]["content"]
    assert not {"products", "ownership_type", "activity_description"} & set(content) and "contacts" in content
    sound = driver.run_result(driver.create_run("https://sound.example").json()["run_id"]).json()
    assert "products" in sound["output"]["content"]

    sandbox.configure("workers_ai", faults=[{"kind": "invalid_output"}])
    result = driver.workers_embed(["a", "b"]).json()["result"]
    assert result["shape"] == [2, 384] and len(result["data"][0]) == 383


def test_fail_run(sandbox: SandboxServer, driver: Driver) -> None:
    sandbox.configure("parallel", job_duration_s=0.1, faults=[{"kind": "fail_run", "times": 1}])
    failing = driver.create_run("https://doomed.example").json()
    assert failing["status"] == "queued" and failing["error"] is None  # failure shows only at the end
    result = driver.run_result(failing["run_id"])
    assert result.status_code == 424
    assert result.json()["error"]["detail"]["run"]["status"] == "failed"
    status = driver.run_status(failing["run_id"]).json()
    assert status["status"] == "failed" and status["is_active"] is False
    assert set(status["error"]) == {"message", "ref_id", "detail"}
    fine = driver.create_run("https://doomed.example").json()
    assert driver.run_result(fine["run_id"]).status_code == 200


def test_batch_items_fault_individually(sandbox: SandboxServer, claude: anthropic.Anthropic) -> None:
    sandbox.configure(
        "anthropic",
        job_duration_s=0,
        faults=[{"kind": "fail_run", "match": "company-2"}, {"kind": "invalid_output", "match": "company-3"}],
    )
    requests = [
        {"custom_id": f"c{i}", "params": {"model": "m", "max_tokens": 50,
                                          "messages": [{"role": "user", "content": f"level of company-{i}"}]}}
        for i in range(4)
    ]  # fmt: skip
    batch = claude.messages.batches.create(requests=requests)  # type: ignore[arg-type]
    assert claude.messages.batches.retrieve(batch.id).request_counts.errored == 1
    results = {r.custom_id: r.result for r in claude.messages.batches.results(batch.id)}
    assert results["c2"].type == "errored"
    assert results["c2"].error.error.type == "api_error"  # type: ignore[union-attr]
    invalid_text = results["c3"].message.content[0].text  # type: ignore[union-attr]
    assert "Extreme" in invalid_text or "invalid" in invalid_text
    assert json.loads(results["c0"].message.content[0].text)["level"] in LEVELS  # type: ignore[union-attr]
    faults = sandbox.stats(log=False)["providers"]["anthropic"]["endpoints"]["batches_create"]["faults"]
    assert faults == {"fail_run": 1, "invalid_output": 1}
