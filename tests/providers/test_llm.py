"""The LLM clients against the sandbox over real HTTP, and the pacer against the session's Prefect server.

Retries keep the production shape (2 retries, exponential) with a short first delay so the suite stays quick;
``retry-after`` is honoured whatever the delay.  Every error is checked for the API key.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anthropic
import httpx
import pytest
from prefect.client.orchestration import get_client

from core.errors import (
    ConfigurationError,
    InvalidProviderOutputError,
    MalformedResponseError,
    ProviderConnectionError,
    ProviderError,
    ProviderServerError,
    RateLimitedError,
)
from core.rubric import CRITERIA, Level, build_prompt, parse_level
from providers.http import RetryPolicy
from providers.llm import AnthropicClient, Completion, GroqClient, LocalRulesClient
from providers.pacing import Pacer, PrefectWindowSlots, SlidingWindowLimiter, window_limit_name
from sandbox.server import SandboxServer
from tasks.scoring import judge
from tests.core.test_rubric import Profile

GROQ_KEY = "gsk-sandbox-secret-groq-0123456789"
ANTHROPIC_KEY = "anthropic-sandbox-secret-0123456789"
FAST_RETRY = RetryPolicy(retries=2, initial_delay=0.02)
PROMPT = build_prompt(Profile(), CRITERIA[2])


@pytest.fixture
def sandbox(provider_sandbox: SandboxServer) -> Iterator[SandboxServer]:
    provider_sandbox.reset(config=True)
    yield provider_sandbox
    provider_sandbox.reset(config=True)


def groq(sandbox: SandboxServer, *, timeout: float = 5.0, pacer: Pacer | None = None) -> GroqClient:
    http = httpx.Client(base_url=f"{sandbox.url}/openai/v1/", headers={"Authorization": f"Bearer {GROQ_KEY}"})
    return GroqClient(http=http, timeout_seconds=timeout, retry=FAST_RETRY, pacer=pacer)


def claude(sandbox: SandboxServer, retry: RetryPolicy = FAST_RETRY) -> AnthropicClient:
    sdk = anthropic.Anthropic(api_key=ANTHROPIC_KEY, base_url=sandbox.url, max_retries=0, timeout=5.0)
    return AnthropicClient(sdk=sdk, model="claude-sandbox", retry=retry)


def groq_stats(sandbox: SandboxServer) -> dict[str, Any]:
    stats: dict[str, Any] = sandbox.stats(log=False)["providers"]["groq"]
    return stats


def assert_no_secret(error: BaseException) -> None:
    text = "".join(traceback.format_exception(error)) + repr(error)
    assert GROQ_KEY not in text and ANTHROPIC_KEY not in text


def raises(fn: Callable[[], Any], kind: type[ProviderError]) -> ProviderError:
    with pytest.raises(kind) as info:
        fn()
    assert_no_secret(info.value)
    return info.value


# --- GROQ --------------------------------------------------------------------------------------------------


def test_groq_answers_with_a_level_and_reports_usage(sandbox: SandboxServer) -> None:
    completion = groq(sandbox).complete(PROMPT)
    assert completion.provider == "groq" and completion.model == "openai/gpt-oss-120b"
    assert parse_level(completion.text) in Level
    assert completion.prompt_tokens > 100 and completion.completion_tokens > 0
    [entry] = sandbox.requests(provider="groq")
    assert entry["status"] == 200 and entry["match_key"].startswith("Company profile:\nCompany: Acme")


def test_groq_rides_out_a_429_storm_on_retry_after(sandbox: SandboxServer) -> None:
    sandbox.configure("groq", requests_per_minute=3, rate_window_s=1.0)
    client = groq(sandbox)
    with ThreadPoolExecutor(max_workers=6) as pool:
        completions = list(pool.map(lambda _: client.complete(PROMPT), range(6)))
    assert all(isinstance(c, Completion) and c.text for c in completions)
    stats = groq_stats(sandbox)
    assert stats["rate_limited"] >= 3 and stats["accepted"] == 6
    assert stats["peak_rate_window"] <= 3


def test_groq_429_after_its_retries_carries_retry_after(sandbox: SandboxServer) -> None:
    sandbox.configure("groq", requests_per_minute=1, rate_window_s=30.0)
    client = GroqClient(
        http=httpx.Client(base_url=f"{sandbox.url}/openai/v1/", headers={"Authorization": f"Bearer {GROQ_KEY}"}),
        retry=RetryPolicy(retries=0),
    )
    client.complete(PROMPT)
    error = raises(lambda: client.complete(PROMPT), RateLimitedError)
    assert isinstance(error, RateLimitedError) and error.retry_after is not None and 25 < error.retry_after <= 30


def test_groq_recovers_from_5xx_timeouts_and_truncated_bodies(sandbox: SandboxServer) -> None:
    client = groq(sandbox, timeout=0.3)
    sandbox.configure(
        "groq", timeout_s=1.0, faults=[{"kind": "5xx", "status": 503, "times": 1}, {"kind": "timeout", "times": 1}]
    )
    assert parse_level(client.complete(PROMPT).text) in Level  # 503, then a timeout, then an answer
    sandbox.configure("groq", faults=[{"kind": "malformed_json", "times": 1}])
    assert parse_level(client.complete(PROMPT).text) in Level  # a truncated body, then an answer
    stats = groq_stats(sandbox)
    assert stats["faults"] == {"5xx": 1, "timeout": 1, "malformed_json": 1}


def test_groq_gives_up_after_its_retries(sandbox: SandboxServer) -> None:
    client = groq(sandbox)
    sandbox.configure("groq", faults=[{"kind": "5xx", "status": 502}])
    error = raises(lambda: client.complete(PROMPT), ProviderServerError)
    assert error.attempts == 3 and "502" in str(error)
    sandbox.configure("groq", faults=[{"kind": "malformed_json"}])
    assert raises(lambda: client.complete(PROMPT), MalformedResponseError).attempts == 3


def test_an_invalid_level_is_asked_again_then_fails_the_criterion(sandbox: SandboxServer) -> None:
    client = groq(sandbox)
    calls: list[int] = []
    sandbox.configure("groq", faults=[{"kind": "invalid_output", "times": 1}])
    score = judge(client, Profile(), CRITERIA[0], on_call=lambda: calls.append(1))
    assert score.calls == 2 and len(calls) == 2 and score.prompt_tokens > 0
    last = sandbox.requests(provider="groq")[-1]
    assert last["match_key"].startswith("That reply could not be read")  # the repair turn

    sandbox.configure("groq", faults=[{"kind": "invalid_output"}])
    before = groq_stats(sandbox)["accepted"]
    error = raises(lambda: judge(client, Profile(), CRITERIA[0]), InvalidProviderOutputError)
    assert error.attempts == 3 and not error.retryable and "AI strategy" in str(error)
    assert groq_stats(sandbox)["accepted"] - before == 3


# --- Anthropic ---------------------------------------------------------------------------------------------


def test_anthropic_through_the_sdk_answers_with_usage(sandbox: SandboxServer) -> None:
    completion = claude(sandbox).complete(PROMPT)
    assert completion.provider == "anthropic" and completion.model == "claude-sandbox"
    assert parse_level(completion.text) in Level
    assert completion.prompt_tokens > 100 and completion.completion_tokens > 0
    with pytest.raises(ValueError, match="max_retries=0"):
        AnthropicClient(sdk=anthropic.Anthropic(api_key="x", base_url=sandbox.url))


def test_anthropic_errors_map_onto_the_tree_and_recover(sandbox: SandboxServer) -> None:
    client = claude(sandbox)
    sandbox.configure(
        "anthropic", faults=[{"kind": "5xx", "status": 529, "times": 1}, {"kind": "malformed_json", "times": 1}]
    )
    assert parse_level(client.complete(PROMPT).text) in Level  # overloaded, then a truncated body, then ok

    once = claude(sandbox, RetryPolicy(retries=0))
    sandbox.reset(config=True)  # empties the window too
    sandbox.configure("anthropic", requests_per_minute=1, rate_window_s=30.0)
    once.complete(PROMPT)
    limited = raises(lambda: once.complete(PROMPT), RateLimitedError)
    assert isinstance(limited, RateLimitedError) and limited.retry_after is not None and limited.retry_after > 25

    sandbox.reset(config=True)
    sandbox.configure("anthropic", faults=[{"kind": "drop"}])
    assert raises(lambda: client.complete(PROMPT), ProviderConnectionError).attempts == 3
    sandbox.configure("anthropic", faults=[{"kind": "5xx", "status": 500}])
    server = raises(lambda: client.complete(PROMPT), ProviderServerError)
    assert server.status_code == 500 and server.__cause__ is None


# --- local rules -------------------------------------------------------------------------------------------


def test_local_rules_are_deterministic_and_labelled() -> None:
    client = LocalRulesClient()
    answers = [client.complete(build_prompt(Profile(), c)) for c in CRITERIA]
    assert answers == [client.complete(build_prompt(Profile(), c)) for c in CRITERIA]
    assert {(a.provider, a.model) for a in answers} == {("local-rules", "local-rules-v1")}
    assert all("not a model judgement" in a.text and a.prompt_tokens > 0 for a in answers)
    levels = {c.key: parse_level(a.text) for c, a in zip(CRITERIA, answers, strict=True)}
    assert levels["data_infrastructure"] is Level.HIGH  # 'data platform' and 'integration'... plurals count
    assert levels["ai_governance"] is Level.LOW
    bakery = Profile(name="Bakkerij Jansen", industry="Bakery", activity_description="Bakes bread.", website=None)
    assert {parse_level(client.complete(build_prompt(bakery, c)).text) for c in CRITERIA} == {Level.LOW}


# --- pacing ------------------------------------------------------------------------------------------------


def hammer(clients: list[GroqClient], calls_each: int) -> None:
    """Each client in its own thread, calling back to back: as fast as its pacer lets it."""
    with ThreadPoolExecutor(max_workers=len(clients)) as pool:
        futures = [pool.submit(lambda c=c: [c.complete(PROMPT) for _ in range(calls_each)]) for c in clients]
        for future in futures:
            future.result()


def test_the_local_window_holds_the_limit_exactly_and_uses_it(sandbox: SandboxServer) -> None:
    sandbox.configure("groq", requests_per_minute=8, rate_window_s=1.0)
    pacer = Pacer("pace-local", SlidingWindowLimiter(8, 1.0))
    client = groq(sandbox, pacer=pacer)
    hammer([client, client], calls_each=10)
    stats = groq_stats(sandbox)
    assert stats["rate_limited"] == 0 and stats["accepted"] == 20
    assert stats["peak_rate_window"] == 8  # never more, and the whole budget was used


def test_two_processes_share_one_budget_through_prefect(sandbox: SandboxServer) -> None:
    """Two pacers with their own local windows (two processes, in effect) share ``window:<tag>``."""
    name = window_limit_name("pace-shared")
    with get_client(sync_client=True) as prefect:
        prefect.upsert_global_concurrency_limit_by_name(name, 8)
    sandbox.configure("groq", requests_per_minute=8, rate_window_s=1.0)
    pacers = [
        Pacer(
            "pace-shared",
            SlidingWindowLimiter(8, 1.0),
            PrefectWindowSlots(name, lease_seconds=60, max_retry_seconds=1 / 8),
        )
        for _ in range(2)
    ]
    assert pacers[0].shared is not None and pacers[0].shared.limit() == 8
    hammer([groq(sandbox, pacer=p) for p in pacers], calls_each=10)
    stats = groq_stats(sandbox)
    assert stats["rate_limited"] == 0 and stats["accepted"] == 20
    assert stats["peak_rate_window"] <= 8  # each local window alone would have let 16 through


def test_one_providers_pacing_never_blocks_another() -> None:
    slow = Pacer("pace-a", SlidingWindowLimiter(1, 30.0))
    fast = Pacer("pace-b", SlidingWindowLimiter(1, 30.0))
    with slow.permit():
        pass  # pace-a's only permit is now out for 30 s
    done = threading.Event()

    def use_fast() -> None:
        with fast.permit():
            done.set()

    worker = threading.Thread(target=use_fast, daemon=True)
    worker.start()
    assert done.wait(timeout=5.0)
    assert slow.limiter.held == 1 and slow.pending_releases() == 1


def test_a_missing_shared_limit_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="window:pace-missing"):
        PrefectWindowSlots(window_limit_name("pace-missing"), lease_seconds=60).limit()


def test_at_exit_outstanding_shared_permits_are_handed_to_their_leases(caplog: pytest.LogCaptureFixture) -> None:
    """A permit still inside its window at exit stays taken on the server (never early), on a shortened lease."""
    name = window_limit_name("pace-exit")
    with get_client(sync_client=True) as prefect:
        prefect.upsert_global_concurrency_limit_by_name(name, 4)
        pacer = Pacer("pace-exit", SlidingWindowLimiter(4, 0.5), PrefectWindowSlots(name, lease_seconds=600))
        with pacer.permit():
            pass
        assert prefect.read_global_concurrency_limit_by_name(name).active_slots == 1
        assert pacer.hand_over_at_exit() == 1  # what the atexit hook does for every pacer
        assert not [r for r in caplog.records if "could not" in r.getMessage()]  # the lease was shortened
        deadline = time.monotonic() + 10
        while pacer.pending_releases() and time.monotonic() < deadline:  # the timer's turn comes and goes
            time.sleep(0.05)
        assert pacer.pending_releases() == 0 and pacer.limiter.held == 0  # the local permit came back
        # the timer left the shared slot alone: its (now one-minute) lease gives it back, not an early release
        assert prefect.read_global_concurrency_limit_by_name(name).active_slots == 1
        assert pacer.hand_over_at_exit() == 0
