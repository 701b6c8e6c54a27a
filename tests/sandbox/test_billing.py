"""What the sandbox would bill: list prices in exact nano-dollars, only for the calls a provider charges."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import anthropic
import httpx
import pytest

from sandbox.prices import Charge, run_charge, to_nanousd, token_charge
from sandbox.server import SandboxServer

from .conftest import GROQ_MODEL, Driver

LEVEL_PROMPT = "Rate the level of AI adoption of Acme BV."
SONNET = "claude-sonnet-4-5"


def bill(sandbox: SandboxServer, provider: str, endpoint: str | None = None) -> dict[str, Any]:
    snap = sandbox.stats(log=False)["providers"][provider]
    if endpoint is not None:
        snap = snap["endpoints"][endpoint]
    keys = ("billed_calls", "list_price_nanousd", "unpriced_calls")
    return {key: snap[key] for key in keys}


def billed(calls: int, nanousd: int, unpriced: int = 0) -> dict[str, int]:
    return {"billed_calls": calls, "list_price_nanousd": nanousd, "unpriced_calls": unpriced}


def chat(driver: Driver, model: str = GROQ_MODEL, path: str = "/openai/v1/chat/completions") -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": LEVEL_PROMPT}]}
    return driver.http.post(path, json=body, headers={"Authorization": "Bearer k"})


def usage_price(response: httpx.Response, input_nano: int, output_nano: int) -> int:
    usage = response.json()["usage"]
    return int(usage["prompt_tokens"]) * input_nano + int(usage["completion_tokens"]) * output_nano


# --- the price list --------------------------------------------------------------------------------------


def test_token_prices_are_exact() -> None:
    million = 1_000_000
    assert token_charge("groq", "openai/gpt-oss-120b", million, million) == Charge(750_000_000)
    assert token_charge("groq", "openai/gpt-oss-20b", 3, 1) == Charge(3 * 75 + 300)
    assert token_charge("groq", "llama-3.1-8b-instant", 10, 10) == Charge(10 * 50 + 10 * 80)
    assert token_charge("openai", "gpt-4o-mini", 7, 3) == Charge(7 * 150 + 3 * 600)
    assert token_charge("workers_ai", "@cf/baai/bge-small-en-v1.5", 12) == Charge(12 * 20)
    assert token_charge("anthropic", "claude-opus-4-1", 2, 1) == Charge(2 * 15_000 + 75_000)
    assert token_charge("anthropic", "claude-haiku-4-5-20251001", 2, 1) == Charge(2 * 1_000 + 5_000)


def test_sonnet_long_context_and_batch_discount() -> None:
    assert token_charge("anthropic", SONNET, 200_000, 10) == Charge(200_000 * 3_000 + 10 * 15_000)
    assert token_charge("anthropic", SONNET, 200_001, 10) == Charge(200_001 * 6_000 + 10 * 22_500)
    assert token_charge("anthropic", SONNET, 200_001, 1, batch=True) == Charge((200_001 * 6_000 + 22_500) // 2)
    assert token_charge("anthropic", "claude-haiku-4-5", 3, 1, batch=True) == Charge(1_500 + 2_500)


def test_unpriced_models_and_run_prices() -> None:
    assert token_charge("groq", "mystery-model", 100, 100) == Charge(None)
    assert token_charge("openai", "openai/gpt-oss-120b", 1, 1) == Charge(None)  # prices are per provider
    assert [run_charge(p).nanousd for p in ("lite", "base", "core", "pro", "ultra")] == [
        5_000_000,
        10_000_000,
        25_000_000,
        100_000_000,
        300_000_000,
    ]
    assert run_charge("turbo") == Charge(None)
    assert to_nanousd(Decimal("0.0000000025")) == 2  # half a nano-dollar rounds to even


# --- LLM calls over HTTP ---------------------------------------------------------------------------------


def test_groq_answer_billed_exactly_by_its_usage(sandbox: SandboxServer, driver: Driver) -> None:
    first, second = chat(driver), chat(driver, "llama-3.1-8b-instant")
    expected = usage_price(first, 150, 600) + usage_price(second, 50, 80)
    assert bill(sandbox, "groq") == billed(2, expected)
    assert bill(sandbox, "groq", "chat_completions") == billed(2, expected)
    assert sandbox.stats(log=False)["providers"]["groq"]["list_price_usd"] == pytest.approx(expected / 1e9)
    openai = chat(driver, "gpt-4o-mini", path="/v1/chat/completions")
    assert bill(sandbox, "openai") == billed(1, usage_price(openai, 150, 600))
    assert bill(sandbox, "groq") == billed(2, expected)  # providers are billed separately

    sandbox.reset()
    assert bill(sandbox, "groq") == billed(0, 0) and bill(sandbox, "openai") == billed(0, 0)


def test_refused_and_failed_calls_are_free(sandbox: SandboxServer, driver: Driver) -> None:
    sandbox.configure("groq", requests_per_minute=1)
    ok = chat(driver)
    assert ok.status_code == 200 and chat(driver).status_code == 429
    expected = usage_price(ok, 150, 600)
    assert bill(sandbox, "groq") == billed(1, expected)

    sandbox.configure("groq", requests_per_minute=None, faults=[{"kind": "5xx", "times": 1, "status": 503}])
    assert chat(driver).status_code == 503
    sandbox.configure("groq", faults=[{"kind": "drop", "times": 1}])
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        chat(driver)
    sandbox.configure("groq", timeout_s=2, faults=[{"kind": "timeout", "times": 1}])
    with pytest.raises(httpx.ReadTimeout):
        driver.http.post(
            "/openai/v1/chat/completions",
            json={"model": GROQ_MODEL, "messages": [{"role": "user", "content": LEVEL_PROMPT}]},
            headers={"Authorization": "Bearer k"},
            timeout=0.3,
        )
    deadline = time.monotonic() + 5
    while not [e for e in sandbox.requests(provider="groq") if e["fault"] == "timeout"]:
        assert time.monotonic() < deadline, "the held request was never logged"
        time.sleep(0.02)
    assert bill(sandbox, "groq") == billed(1, expected)


def test_bad_answers_that_arrive_are_billed(sandbox: SandboxServer, driver: Driver) -> None:
    sandbox.configure("groq", faults=[{"kind": "invalid_output", "times": 1}, {"kind": "malformed_json", "times": 1}])
    invalid = chat(driver)
    assert invalid.status_code == 200
    assert chat(driver).status_code == 200  # truncated body, so its usage cannot be read by the client
    assert bill(sandbox, "groq")["billed_calls"] == 2
    assert bill(sandbox, "groq")["list_price_nanousd"] > usage_price(invalid, 150, 600)

    sandbox.configure("workers_ai", timeout_s=0.2, faults=[{"kind": "timeout"}])
    assert driver.workers_embed("one two three").status_code == 200  # held, but the client waited for it
    assert bill(sandbox, "workers_ai") == billed(1, 3 * 20)


def test_unpriced_model_is_counted_not_priced(sandbox: SandboxServer, driver: Driver) -> None:
    assert chat(driver, "mystery-model").status_code == 200
    assert bill(sandbox, "groq") == billed(0, 0, unpriced=1)
    assert driver.openai_embed("hello").status_code == 200  # no embedding model has a list price
    assert bill(sandbox, "openai", "embeddings") == billed(0, 0, unpriced=1)


def test_anthropic_message_billed(sandbox: SandboxServer, claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(model=SONNET, max_tokens=200, messages=[{"role": "user", "content": LEVEL_PROMPT}])
    expected = message.usage.input_tokens * 3_000 + message.usage.output_tokens * 15_000
    assert bill(sandbox, "anthropic", "messages") == billed(1, expected)
    sandbox.configure("anthropic", faults=[{"kind": "5xx", "status": 529}])
    with pytest.raises(anthropic.APIStatusError):
        claude.messages.create(model=SONNET, max_tokens=200, messages=[{"role": "user", "content": LEVEL_PROMPT}])
    assert bill(sandbox, "anthropic") == billed(1, expected)


# --- jobs ------------------------------------------------------------------------------------------------


def _batch_request(custom_id: str, model: str = SONNET) -> dict[str, Any]:
    content = f"{LEVEL_PROMPT} ({custom_id})"
    return {"custom_id": custom_id, "params": {"model": model, "max_tokens": 200,
                                               "messages": [{"role": "user", "content": content}]}}  # fmt: skip


def test_batch_bills_succeeded_items_at_half_price(sandbox: SandboxServer, claude: anthropic.Anthropic) -> None:
    sandbox.configure("anthropic", job_duration_s=0.3, faults=[{"kind": "fail_run", "match": "item-2"}])
    requests = [_batch_request(f"item-{i}") for i in range(4)] + [_batch_request("other", "claude-unknown")]
    batch = claude.messages.batches.create(requests=requests)  # type: ignore[arg-type]
    assert bill(sandbox, "anthropic") == billed(0, 0)  # nothing is billed before the batch ends
    deadline = time.monotonic() + 5
    while claude.messages.batches.retrieve(batch.id).processing_status != "ended":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    expected = 0
    for result in claude.messages.batches.results(batch.id):
        if result.result.type == "succeeded" and result.custom_id != "other":
            usage = result.result.message.usage
            expected += (usage.input_tokens * 3_000 + usage.output_tokens * 15_000) // 2
    assert bill(sandbox, "anthropic", "batches_create") == billed(3, expected, unpriced=1)
    assert bill(sandbox, "anthropic") == billed(3, expected, unpriced=1)  # billed once, however often asked


def test_canceled_batch_items_are_free(sandbox: SandboxServer, claude: anthropic.Anthropic) -> None:
    sandbox.configure("anthropic", job_duration_s=30)
    requests = [_batch_request(f"c{i}") for i in range(3)]
    batch = claude.messages.batches.create(requests=requests)  # type: ignore[arg-type]
    claude.messages.batches.cancel(batch.id)
    deadline = time.monotonic() + 5
    while claude.messages.batches.retrieve(batch.id).processing_status != "ended":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert bill(sandbox, "anthropic") == billed(0, 0)


def test_parallel_run_billed_once_when_it_completes(sandbox: SandboxServer, driver: Driver) -> None:
    sandbox.configure("parallel", job_duration_s=0.3, faults=[{"kind": "fail_run", "match": "doomed"}])
    body = {"processor": "core", "input": "https://acme.example"}
    run = driver.http.post("/v1/tasks/runs", json=body, headers={"x-api-key": "k"}).json()
    doomed = driver.create_run("https://doomed.example").json()
    unknown = {"processor": "turbo", "input": "https://other.example"}
    other = driver.http.post("/v1/tasks/runs", json=unknown, headers={"x-api-key": "k"}).json()
    assert bill(sandbox, "parallel") == billed(0, 0)  # created, not yet completed
    assert driver.run_result(run["run_id"]).status_code == 200
    assert driver.run_result(doomed["run_id"]).status_code == 424
    assert driver.run_result(other["run_id"]).status_code == 200
    assert bill(sandbox, "parallel", "create_run") == billed(1, 25_000_000, unpriced=1)
    driver.run_result(run["run_id"])
    assert bill(sandbox, "parallel") == billed(1, 25_000_000, unpriced=1)  # billed once, not per poll
    assert sandbox.stats(log=False)["providers"]["parallel"]["list_price_usd"] == pytest.approx(0.025)


# --- Workers AI ------------------------------------------------------------------------------------------


def test_workers_ai_reports_usage_and_is_billed_by_it(sandbox: SandboxServer, driver: Driver) -> None:
    result = driver.workers_embed(["Acme robotics Amsterdam", "data platform"]).json()["result"]
    assert result["usage"] == {"prompt_tokens": 5, "total_tokens": 5}
    assert result["shape"] == [2, 384]
    sandbox.configure("workers_ai", faults=[{"kind": "5xx", "times": 1}])
    assert driver.workers_embed("not billed").status_code == 500
    assert bill(sandbox, "workers_ai") == billed(1, 5 * 20)
