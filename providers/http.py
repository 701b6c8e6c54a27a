"""The one place where HTTP outcomes become provider errors, and where provider calls are retried.

Every HTTP client of this project sends its requests through ``send_json``; it maps status codes and transport
failures onto the error tree of ``core.errors`` and retries only what is retryable, honouring ``retry-after``.
Error messages are built from the status code and the provider's own error text, never from request headers,
so no credential can leak into a log line or an exception.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from core.errors import (
    MalformedResponseError,
    ProviderConnectionError,
    ProviderError,
    ProviderRequestError,
    ProviderServerError,
    ProviderTimeoutError,
    RateLimitedError,
    RetryableProviderError,
)
from providers.guards import CallGuard, GuardedCall, guard_for


@dataclass(frozen=True)
class RetryPolicy:
    """Application-level retries: ``retries`` extra attempts, exponential from ``initial_delay`` seconds."""

    retries: int = 2
    initial_delay: float = 0.5
    max_delay: float = 60.0
    jitter: float = 0.1
    #: the provider block's concurrency tag: its circuit breaker guards every attempt (``providers.guards``)
    guard_tag: str | None = None

    def wait(self, state: RetryCallState) -> float:
        delay = min(self.max_delay, self.initial_delay * 2 ** (state.attempt_number - 1))
        delay *= 1 + random.uniform(0, self.jitter)
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, RateLimitedError) and error.retry_after is not None:
            delay = max(delay, min(error.retry_after, self.max_delay))
        return float(delay)

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` with retries on retryable provider errors; the final error records its attempts.

        With a guard for ``guard_tag``, every attempt first asks the guard, and an attempt that failed because
        the provider is down (the guard's breaker is open) is not counted: it waits for the breaker and goes
        again, so an outage never uses up a company's retries and never turns it into a dead job.
        """
        guard = guard_for(self.guard_tag)
        if guard is not None:
            fn = _guarded(fn, guard)
        retrying = Retrying(
            stop=stop_after_attempt(self.retries + 1),
            wait=self.wait,
            retry=retry_if_exception(lambda e: isinstance(e, RetryableProviderError)),
            reraise=True,
        )
        attempt = 0
        try:
            for attempt_ctx in retrying:
                attempt = attempt_ctx.retry_state.attempt_number
                with attempt_ctx:
                    return fn()
        except ProviderError as error:
            error.attempts = attempt
            raise
        raise AssertionError("unreachable")  # pragma: no cover


def _guarded(fn: Callable[[], Any], guard: CallGuard) -> Callable[[], Any]:
    call = GuardedCall()

    def attempt() -> Any:
        while True:
            guard.before_call(call)
            try:
                result = fn()
            except ProviderError as error:
                if guard.failed(call, error):
                    continue
                raise
            guard.succeeded(call)
            return result

    return attempt


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _provider_message(response: httpx.Response) -> str:
    """The provider's own error text, shortened; bodies come in several shapes."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    if isinstance(body, dict):
        error = body.get("error") or body.get("errors")
        if isinstance(error, dict):
            return str(error.get("message") or error)[:300]
        if isinstance(error, list) and error:
            first = error[0]
            return str(first.get("message") if isinstance(first, dict) else first)[:300]
        if isinstance(error, str):
            return error[:300]
        if "detail" in body:
            return str(body["detail"])[:300]
    return str(body)[:300]


def raise_for_status(response: httpx.Response, provider: str) -> None:
    status = response.status_code
    if status < 400:
        return
    message = f"HTTP {status}: {_provider_message(response)}"
    if status == 429:
        raise RateLimitedError(
            message, provider=provider, retry_after=parse_retry_after(response.headers.get("retry-after"))
        )
    if status in (408, 409) or status >= 500:
        raise ProviderServerError(message, provider=provider, status_code=status)
    raise ProviderRequestError(message, provider=provider, status_code=status)


def send_json(
    client: httpx.Client,
    method: str,
    url: str,
    *,
    provider: str,
    json_body: Any = None,
    params: dict[str, Any] | None = None,
    timeout: float | httpx.Timeout | None = None,
) -> Any:
    """One HTTP call, errors mapped, the JSON body returned (no retries here: see ``RetryPolicy.call``)."""
    try:
        kwargs: dict[str, Any] = {"json": json_body, "params": params}
        if timeout is not None:
            kwargs["timeout"] = timeout
        response = client.request(method, url, **kwargs)
    except httpx.TimeoutException as exc:
        raise ProviderTimeoutError(f"timed out ({type(exc).__name__})", provider=provider) from None
    except httpx.TransportError as exc:
        raise ProviderConnectionError(f"connection failed ({type(exc).__name__})", provider=provider) from None
    raise_for_status(response, provider)
    try:
        return response.json()
    except (ValueError, json.JSONDecodeError):
        raise MalformedResponseError(
            f"HTTP {response.status_code} with a body that is not JSON ({len(response.content)} bytes)",
            provider=provider,
        ) from None
