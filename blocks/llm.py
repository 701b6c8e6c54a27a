"""LLM-provider blocks: GROQ, Anthropic and the offline local-rules provider.

Each block holds configuration and secrets and builds its client once (``get_client()``).  ``concurrency_tag``
names the Prefect limits of the provider: ``tag:<tag>`` caps its batches in flight (read by the engine) and, for
paced providers, ``window:<tag>`` holds its requests per window across processes (see ``providers.pacing``).
Two documents of one type (two GROQ organisations, say) get different tags and so different budgets.
"""

from __future__ import annotations

from typing import ClassVar

import anthropic
import httpx
from prefect.blocks.core import Block
from pydantic import Field, PrivateAttr, SecretStr

from blocks.batching import FAST_API_CALLS_PER_BATCH, PAID_CALLS_PER_BATCH, calls_per_batch_field
from providers.anthropic_batches import MessageBatchesClient
from providers.http import RetryPolicy
from providers.llm import (
    DEFAULT_ANTHROPIC_MODEL,
    DEFAULT_GROQ_MODEL,
    AnthropicClient,
    GroqClient,
    LLMClient,
    LocalRulesClient,
)
from providers.pacing import Pacer, PrefectWindowSlots, SharedWindow, pacer_for, window_limit_name

#: a lease on a shared permit outlives the window and the slowest call by this much (only a dead process needs it)
LEASE_MARGIN_SECONDS = 60.0


def _pacer(tag: str, per_window: int, window_seconds: float, timeout_seconds: float, share_budget: bool) -> Pacer:
    def shared() -> SharedWindow:
        return PrefectWindowSlots(
            window_limit_name(tag),
            lease_seconds=window_seconds + timeout_seconds + LEASE_MARGIN_SECONDS,
            max_retry_seconds=window_seconds / per_window,
        )

    return pacer_for(
        tag,
        requests_per_window=per_window,
        window_seconds=window_seconds,
        shared=shared if share_budget else None,
    )


class GroqLLM(Block):
    """GROQ's OpenAI-compatible chat completions, paced to its per-minute request limit."""

    _block_type_name: ClassVar[str] = "GROQ LLM"
    _block_type_slug: ClassVar[str] = "groq-llm"
    _description: ClassVar[str] = "GROQ chat completions (OpenAI-compatible), paced to the per-minute limit."

    api_key: SecretStr = Field(description="GROQ API key (gsk_...).")
    base_url: str = Field(
        default="https://api.groq.com/openai/v1", description="API base ending in /openai/v1 (the sandbox in tests)."
    )
    model: str = Field(default=DEFAULT_GROQ_MODEL)
    temperature: float = Field(default=0.1, ge=0.0, le=2.0)
    max_tokens: int = Field(default=500, ge=1, le=32_768, description="Completion tokens per call.")
    timeout_seconds: float = Field(default=30.0, gt=0, description="Per call (each retry gets its own).")
    requests_per_minute: int = Field(
        default=30, ge=1, description="The organisation's request limit for this model, per window."
    )
    rate_window_seconds: float = Field(
        default=60.0, gt=0, description="Length of the request-limit window: 60 for GROQ; tests shorten it."
    )
    share_budget: bool = Field(
        default=True,
        description="Share the budget with every process through the Prefect limit window:<tag> (needed "
        "whenever more than one process may call this provider).",
    )
    retries: int = Field(default=2, ge=0, le=10)
    concurrency_tag: str = Field(default="groq", description="Prefect concurrency tag.")
    calls_per_batch: int = calls_per_batch_field(PAID_CALLS_PER_BATCH)

    _client: LLMClient | None = PrivateAttr(default=None)

    def get_client(self) -> LLMClient:
        if self._client is None:
            http = httpx.Client(
                base_url=self.base_url.rstrip("/") + "/",
                headers={"Authorization": f"Bearer {self.api_key.get_secret_value()}"},
                timeout=self.timeout_seconds,
            )
            self._client = GroqClient(
                http=http,
                model=self.model,
                temperature=self.temperature,
                max_tokens=self.max_tokens,
                timeout_seconds=self.timeout_seconds,
                retry=RetryPolicy(retries=self.retries, initial_delay=0.5, guard_tag=self.concurrency_tag),
                pacer=_pacer(
                    self.concurrency_tag,
                    self.requests_per_minute,
                    self.rate_window_seconds,
                    self.timeout_seconds,
                    self.share_budget,
                ),
            )
        return self._client


class AnthropicLLM(Block):
    """Anthropic Messages through the official SDK; paced only if a request limit is set."""

    _block_type_name: ClassVar[str] = "Anthropic LLM"
    _block_type_slug: ClassVar[str] = "anthropic-llm"
    _description: ClassVar[str] = "Anthropic Messages API (official SDK; our RetryPolicy owns retries)."

    api_key: SecretStr = Field(description="Anthropic API key (sk-ant-...).")
    base_url: str = Field(default="https://api.anthropic.com", description="API origin (the sandbox in tests).")
    model: str = Field(default=DEFAULT_ANTHROPIC_MODEL)
    max_tokens: int = Field(default=500, ge=1, le=64_000)
    timeout_seconds: float = Field(default=30.0, gt=0)
    retries: int = Field(default=2, ge=0, le=10)
    requests_per_minute: int | None = Field(
        default=None, ge=1, description="Pace to this many requests per window (empty: no pacing)."
    )
    rate_window_seconds: float = Field(default=60.0, gt=0)
    share_budget: bool = Field(default=True, description="Share the budget through Prefect (window:<tag>).")
    concurrency_tag: str = Field(default="anthropic", description="Prefect concurrency tag.")
    calls_per_batch: int = calls_per_batch_field(PAID_CALLS_PER_BATCH)

    _client: LLMClient | None = PrivateAttr(default=None)
    _batches: MessageBatchesClient | None = PrivateAttr(default=None)

    def get_batches_client(self) -> MessageBatchesClient:
        """The Message Batches endpoints (LLM reclassify): no pacer, batches are not per-request limited."""
        if self._batches is None:
            sdk = anthropic.Anthropic(
                api_key=self.api_key.get_secret_value(),
                base_url=self.base_url,
                timeout=self.timeout_seconds,
                max_retries=0,
            )
            self._batches = MessageBatchesClient(
                sdk, RetryPolicy(retries=self.retries, initial_delay=0.5, guard_tag=self.concurrency_tag)
            )
        return self._batches

    def get_client(self) -> LLMClient:
        if self._client is None:
            sdk = anthropic.Anthropic(
                api_key=self.api_key.get_secret_value(),
                base_url=self.base_url,
                timeout=self.timeout_seconds,
                max_retries=0,
            )
            pacer = None
            if self.requests_per_minute is not None:
                pacer = _pacer(
                    self.concurrency_tag,
                    self.requests_per_minute,
                    self.rate_window_seconds,
                    self.timeout_seconds,
                    self.share_budget,
                )
            self._client = AnthropicClient(
                sdk=sdk,
                model=self.model,
                max_tokens=self.max_tokens,
                retry=RetryPolicy(retries=self.retries, initial_delay=0.5, guard_tag=self.concurrency_tag),
                pacer=pacer,
            )
        return self._client


class LocalRulesLLM(Block):
    """Deterministic keyword rules, offline and free; scores are stored as provider ``local-rules``."""

    _block_type_name: ClassVar[str] = "Local Rules LLM"
    _block_type_slug: ClassVar[str] = "local-rules-llm"
    _description: ClassVar[str] = "Offline keyword rules standing in for an LLM (labelled local-rules-v1)."

    concurrency_tag: str = Field(default="llm-local", description="Prefect concurrency tag.")
    calls_per_batch: int = calls_per_batch_field(FAST_API_CALLS_PER_BATCH)

    _client: LLMClient | None = PrivateAttr(default=None)

    def get_client(self) -> LLMClient:
        if self._client is None:
            self._client = LocalRulesClient()
        return self._client


LLMBlock = GroqLLM | AnthropicLLM | LocalRulesLLM
LLM_BLOCK_TYPES: tuple[type[Block], ...] = (GroqLLM, AnthropicLLM, LocalRulesLLM)
