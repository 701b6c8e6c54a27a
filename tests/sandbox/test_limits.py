"""Rate and concurrency limits as a client meets them: 429, retry-after, sliding window, stats."""

from __future__ import annotations

import asyncio
import time

import anthropic
import httpx

from sandbox.server import SandboxServer

from .conftest import GROQ_MODEL, Driver

GROQ_HEADERS = {"Authorization": "Bearer gsk_test"}
CHAT = {"model": GROQ_MODEL, "messages": [{"role": "user", "content": "hello"}]}


def test_requests_per_minute(sandbox: SandboxServer, driver: Driver) -> None:
    sandbox.configure("groq", requests_per_minute=5)
    statuses = [driver.chat(f"prompt {i}").status_code for i in range(5)]
    assert statuses == [200] * 5
    rejected = driver.chat("one too many")
    assert rejected.status_code == 429
    assert rejected.json() == {
        "error": {
            "message": rejected.json()["error"]["message"],
            "type": "requests",
            "code": "rate_limit_exceeded",
        }
    }
    assert rejected.json()["error"]["message"].startswith("Rate limit reached")
    assert 55 < float(rejected.headers["retry-after"]) <= 60  # until the first request leaves the minute
    assert "x-ratelimit-remaining-requests" in rejected.headers

    stats = sandbox.stats(log=False)["providers"]["groq"]
    assert stats["accepted"] == 5 and stats["rate_limited"] == 1 and stats["received"] == 6
    assert stats["peak_window_60s"] == 5
    assert stats["endpoints"]["chat_completions"]["rate_limited"] == 1


def _chat_at(driver: Driver, moment: float) -> httpx.Response:
    """Send a chat request once the clock reaches ``moment`` (waiting for time, not for the server)."""
    time.sleep(max(0.0, moment - time.monotonic()))
    return driver.chat("hello")


def test_window_slides_instead_of_resetting(sandbox: SandboxServer, driver: Driver) -> None:
    """Limit 4 per 1 s: the window is (now - 1, now], not calendar buckets."""
    sandbox.configure("groq", requests_per_minute=4, rate_window_s=1.0)
    assert [driver.chat("a").status_code for _ in range(2)] == [200, 200]
    first_done = time.monotonic()  # both first requests were accepted before this moment
    second_start = first_done + 0.5
    assert [_chat_at(driver, second_start).status_code for _ in range(2)] == [200, 200]
    full = driver.chat("b")
    assert full.status_code == 429 and 0.1 <= float(full.headers["retry-after"]) <= 0.5
    # After the first two left (first_done + 1) and before the next two leave (second_start + 1):
    # two free slots, where a fresh calendar bucket would offer four.
    statuses = [_chat_at(driver, first_done + 1.15).status_code for _ in range(3)]
    assert time.monotonic() < second_start + 1.0, "machine too slow for this timing test"
    assert statuses == [200, 200, 429]
    stats = sandbox.stats(log=False)["providers"]["groq"]
    assert stats["peak_rate_window"] == 4 and stats["rate_window_s"] == 1.0
    assert stats["peak_window_60s"] == 6 and stats["rate_limited"] == 2


def test_rejected_requests_do_not_count(sandbox: SandboxServer, driver: Driver) -> None:
    sandbox.configure("groq", requests_per_minute=2, rate_window_s=0.8)
    assert [driver.chat("x").status_code for _ in range(2)] == [200, 200]
    accepted_by = time.monotonic()
    hammered = [driver.chat("x").status_code for _ in range(5)]
    assert set(hammered) == {429}
    # Had the 429s counted, the window would still be full once the two accepted requests have left it.
    assert _chat_at(driver, accepted_by + 0.85).status_code == 200


async def _concurrent(url: str, count: int, send: str) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        if send == "chat":
            calls = [client.post("/openai/v1/chat/completions", json=CHAT, headers=GROQ_HEADERS) for _ in range(count)]
        else:
            calls = [
                client.post("/v1/tasks/runs", json={"input": f"company {i}"}, headers={"x-api-key": "k"})
                for i in range(count)
            ]
        return list(await asyncio.gather(*calls))


def test_concurrency_cap(sandbox: SandboxServer) -> None:
    sandbox.configure("groq", max_concurrency=2, latency_ms=500)
    responses = asyncio.run(_concurrent(sandbox.url, 5, "chat"))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 200, 429, 429, 429]
    rejected = next(r for r in responses if r.status_code == 429)
    assert float(rejected.headers["retry-after"]) >= 0.1
    stats = sandbox.stats(log=False)["providers"]["groq"]
    assert stats["peak_concurrency"] == 2 and stats["rate_limited"] == 3 and stats["in_flight"] == 0


def test_parallel_caps_active_runs(sandbox: SandboxServer, driver: Driver) -> None:
    sandbox.configure("parallel", max_concurrency=2, job_duration_s=0.5)
    first = driver.create_run("https://a.example").json()["run_id"]
    assert driver.create_run("https://b.example").status_code == 202
    third = driver.create_run("https://c.example")
    assert third.status_code == 429
    assert third.json()["type"] == "error" and "active task runs" in third.json()["error"]["message"]
    assert 0.1 <= float(third.headers["retry-after"]) <= 0.5
    # Polling is not limited by the run cap.
    assert driver.run_status(first).status_code == 200
    assert driver.run_result(first).status_code == 200  # blocks until a slot frees
    assert driver.create_run("https://c.example").status_code == 202
    parallel = sandbox.stats(log=False)["providers"]["parallel"]
    assert parallel["peak_active_runs"] == 2 and parallel["runs_created"] == 3
    assert parallel["endpoints"]["create_run"]["rate_limited"] == 1


def test_parallel_cap_holds_under_concurrent_creation(sandbox: SandboxServer) -> None:
    """Admission reserves the slot, so the latency between check and creation cannot let extra runs in."""
    sandbox.configure("parallel", max_concurrency=3, latency_ms=100, job_duration_s=5)
    responses = asyncio.run(_concurrent(sandbox.url, 6, "runs"))
    assert sorted(r.status_code for r in responses) == [202, 202, 202, 429, 429, 429]
    assert sandbox.stats(log=False)["providers"]["parallel"]["peak_active_runs"] == 3


def test_anthropic_rate_limit_with_sdk(sandbox: SandboxServer, claude: anthropic.Anthropic) -> None:
    sandbox.configure("anthropic", requests_per_minute=1)
    params = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}]}
    claude.messages.create(**params)  # type: ignore[call-overload]
    try:
        claude.messages.create(**params)  # type: ignore[call-overload]
    except anthropic.RateLimitError as exc:
        assert exc.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
        assert float(exc.response.headers["retry-after"]) > 50
        assert exc.response.headers["anthropic-ratelimit-requests-limit"] == "1"
    else:
        raise AssertionError("expected a 429")
