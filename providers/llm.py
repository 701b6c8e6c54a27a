"""LLM clients behind one small interface: GROQ (OpenAI-compatible HTTP), Anthropic (official SDK), local rules.

Every client answers ``complete(messages) -> Completion`` with the text, the model that produced it and the
token usage, so the scoring task neither knows nor cares who answered.  Errors follow ``core.errors``: the
clients retry what is retryable (``RetryPolicy``, one owner of retries: the Anthropic SDK's own retries are
switched off), and each attempt of a paced client takes its own permit from the provider's ``Pacer``.

Messages are ``{"role", "content"}`` mappings; a ``system`` message goes where each API wants it.  Nothing here
ever puts a credential into a message or an exception: errors are built from status codes and the provider's
error text, and SDK exceptions are not chained (their request objects carry headers).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

import anthropic
import httpx

from core.errors import (
    MalformedResponseError,
    ProviderConnectionError,
    ProviderError,
    ProviderRequestError,
    ProviderServerError,
    ProviderTimeoutError,
    RateLimitedError,
)
from core.rubric import Criterion, Judgement, Level, read_prompt
from providers.http import RetryPolicy, parse_retry_after, send_json
from providers.pacing import Pacer

DEFAULT_GROQ_MODEL = "openai/gpt-oss-120b"
DEFAULT_ANTHROPIC_MODEL = "claude-sonnet-4-5"
LOCAL_RULES_MODEL = "local-rules-v1"

Messages = Sequence[Mapping[str, str]]


@dataclass(frozen=True)
class Completion:
    """One answer: its text, who produced it, and what it cost in tokens."""

    text: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    provider: str


class LLMClient(Protocol):
    provider: str
    model: str
    #: completion tokens a call may produce at most (what a budget reservation assumes)
    max_tokens: int

    def complete(
        self, messages: Messages, *, max_tokens: int | None = None, temperature: float | None = None
    ) -> Completion:
        """Answer the conversation; ``None`` means the client's configured default."""
        ...


@contextmanager
def _paced(pacer: Pacer | None) -> Iterator[None]:
    with pacer.permit() if pacer is not None else nullcontext():
        yield


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


# --- GROQ --------------------------------------------------------------------------------------------------


class GroqClient:
    """GROQ chat completions (OpenAI shape) over httpx; ``http`` carries the base URL and the bearer token."""

    provider = "groq"

    def __init__(
        self,
        *,
        http: httpx.Client,
        model: str = DEFAULT_GROQ_MODEL,
        temperature: float = 0.1,
        max_tokens: int = 500,
        timeout_seconds: float = 30.0,
        retry: RetryPolicy | None = None,
        pacer: Pacer | None = None,
    ) -> None:
        self.model = model
        self._http = http
        self._temperature = temperature
        self.max_tokens = max_tokens
        self._timeout = timeout_seconds
        self._retry = retry or RetryPolicy(retries=2, initial_delay=0.5)
        self._pacer = pacer

    def complete(
        self, messages: Messages, *, max_tokens: int | None = None, temperature: float | None = None
    ) -> Completion:
        body = {
            "model": self.model,
            "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
            "temperature": self._temperature if temperature is None else temperature,
            "max_completion_tokens": self.max_tokens if max_tokens is None else max_tokens,
        }
        completion: Completion = self._retry.call(lambda: self._attempt(body))
        return completion

    def _attempt(self, body: dict[str, Any]) -> Completion:
        with _paced(self._pacer):
            data = send_json(
                self._http,
                "POST",
                "chat/completions",
                provider=self.provider,
                json_body=body,
                timeout=self._timeout,
            )
        try:
            message = data["choices"][0]["message"]
        except (KeyError, IndexError, TypeError):
            # a 2xx body of the wrong shape is a broken answer, not a judgement: worth another try
            raise MalformedResponseError("response has no choices[0].message", provider=self.provider) from None
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        content = message.get("content") if isinstance(message, dict) else None
        return Completion(
            text=content if isinstance(content, str) else "",
            model=str(data.get("model") or self.model),
            prompt_tokens=_int(usage.get("prompt_tokens")),
            completion_tokens=_int(usage.get("completion_tokens")),
            provider=self.provider,
        )


# --- Anthropic ---------------------------------------------------------------------------------------------


def anthropic_error(error: anthropic.APIStatusError, provider: str) -> ProviderError:
    """The SDK's status errors on our tree (the SDK's message would carry the whole body)."""
    status = error.status_code
    body = error.body
    detail = ""
    if isinstance(body, dict):
        inner = body.get("error")
        detail = str(inner.get("message") if isinstance(inner, dict) else inner or "")
    message = f"HTTP {status}: {(detail or type(error).__name__)[:300]}"
    if status == 429:
        headers = error.response.headers
        retry_after = parse_retry_after(headers.get("retry-after"))
        retry_ms = parse_retry_after(headers.get("retry-after-ms"))
        if retry_ms is not None:
            retry_after = retry_ms / 1000
        return RateLimitedError(message, provider=provider, retry_after=retry_after)
    if status in (408, 409) or status >= 500:
        return ProviderServerError(message, provider=provider, status_code=status)
    return ProviderRequestError(message, provider=provider, status_code=status)


class AnthropicClient:
    """Anthropic Messages through the official SDK (built with ``max_retries=0``: ``RetryPolicy`` retries).

    ``temperature`` is accepted for the interface and ignored: the Messages API of this SDK generation takes none.
    """

    provider = "anthropic"

    def __init__(
        self,
        *,
        sdk: anthropic.Anthropic,
        model: str = DEFAULT_ANTHROPIC_MODEL,
        max_tokens: int = 500,
        retry: RetryPolicy | None = None,
        pacer: Pacer | None = None,
    ) -> None:
        if sdk.max_retries != 0:
            raise ValueError("build the Anthropic SDK client with max_retries=0: RetryPolicy owns retries")
        self.model = model
        self._sdk = sdk
        self.max_tokens = max_tokens
        self._retry = retry or RetryPolicy(retries=2, initial_delay=0.5)
        self._pacer = pacer

    def complete(
        self, messages: Messages, *, max_tokens: int | None = None, temperature: float | None = None
    ) -> Completion:
        system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
        params: dict[str, Any] = {
            "model": self.model,
            "max_tokens": self.max_tokens if max_tokens is None else max_tokens,
            "messages": [{"role": m["role"], "content": m["content"]} for m in messages if m["role"] != "system"],
        }
        if system:
            params["system"] = system
        completion: Completion = self._retry.call(lambda: self._attempt(params))
        return completion

    def _attempt(self, params: dict[str, Any]) -> Completion:
        with _paced(self._pacer):
            try:
                message = self._sdk.messages.create(**params)
            except anthropic.APIStatusError as exc:
                raise anthropic_error(exc, self.provider) from None
            except anthropic.APITimeoutError:
                raise ProviderTimeoutError("timed out", provider=self.provider) from None
            except anthropic.APIConnectionError:
                raise ProviderConnectionError("connection failed", provider=self.provider) from None
            except (anthropic.APIResponseValidationError, json.JSONDecodeError):
                raise MalformedResponseError("a 2xx body that is not a message", provider=self.provider) from None
        text = "".join(block.text for block in message.content if block.type == "text")
        return Completion(
            text=text,
            model=message.model or self.model,
            prompt_tokens=_int(message.usage.input_tokens),
            completion_tokens=_int(message.usage.output_tokens),
            provider=self.provider,
        )


# --- local rules -------------------------------------------------------------------------------------------


@lru_cache(maxsize=128)
def _keyword_pattern(keyword: str) -> re.Pattern[str]:
    """The keyword as a whole word or phrase, plural allowed ("data platforms" is evidence of "data platform")."""
    return re.compile(rf"(?<![\w-]){re.escape(keyword)}(?:s|es)?(?![\w-])", re.IGNORECASE)


def rule_judgement(profile: str, criterion: Criterion) -> Judgement:
    """Keyword evidence in the profile: none → Low, one → Medium, two → High, three or more → Very High."""
    hits = [k for k in criterion.keywords if _keyword_pattern(k).search(profile)]
    level = (Level.LOW, Level.MEDIUM, Level.HIGH, Level.VERY_HIGH)[min(len(hits), 3)]
    label = f"Local keyword rules ({LOCAL_RULES_MODEL}), not a model judgement."
    if not hits:
        return Judgement(level, f"{label} No evidence words for {criterion.name} in the profile.")
    return Judgement(level, f"{label} Evidence for {criterion.name}: {', '.join(repr(h) for h in hits)}.")


def _words(text: str) -> int:
    return len(text.split())


class LocalRulesClient:
    """Deterministic, offline keyword rules over the company profile in a rubric prompt.

    Labelled as such everywhere: provider ``local-rules``, model ``local-rules-v1``, and reasoning that says it
    is not a model judgement.  Token counts are words, so usage reports stay comparable in shape.
    """

    provider = "local-rules"
    model = LOCAL_RULES_MODEL
    max_tokens = 0  # free: nothing to reserve

    def complete(
        self, messages: Messages, *, max_tokens: int | None = None, temperature: float | None = None
    ) -> Completion:
        try:
            parts = read_prompt(messages)
        except ValueError as exc:
            raise ProviderRequestError(str(exc), provider=self.provider) from None
        judgement = rule_judgement(parts.profile, parts.criterion)
        text = json.dumps({"level": judgement.level.value, "reasoning": judgement.reasoning})
        return Completion(
            text=text,
            model=self.model,
            prompt_tokens=sum(_words(m["content"]) for m in messages),
            completion_tokens=_words(text),
            provider=self.provider,
        )
