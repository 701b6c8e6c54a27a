"""Embedding clients behind one small interface: the local MiniLM model and two HTTP APIs.

``model_id`` names the vector space a client produces; it is stored with every vector.  For Workers AI the
pooling is part of it (``...#cls``), because mean- and cls-pooled bge vectors are not comparable.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import httpx
import numpy as np
import numpy.typing as npt

from core.errors import InvalidProviderOutputError
from providers.http import RetryPolicy, send_json

Vectors = npt.NDArray[np.float32]


class EmbeddingClient(Protocol):
    model_id: str

    def embed(self, texts: Sequence[str]) -> Vectors:
        """Unit-norm float32 vectors, one row per text, in order."""
        ...


def _normalised(rows: object, expected: int, provider: str) -> Vectors:
    try:
        matrix = np.asarray(rows, dtype=np.float32)
    except (TypeError, ValueError):
        raise InvalidProviderOutputError("embedding data is not a numeric matrix", provider=provider) from None
    if matrix.ndim != 2 or matrix.shape[0] != expected or matrix.shape[1] == 0:
        raise InvalidProviderOutputError(
            f"expected {expected} vectors, got an array of shape {matrix.shape}", provider=provider
        )
    if not np.isfinite(matrix).all():
        raise InvalidProviderOutputError("embedding contains NaN or infinity", provider=provider)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    if (norms == 0).any():
        raise InvalidProviderOutputError("embedding contains a zero vector", provider=provider)
    normalised: Vectors = (matrix / norms).astype(np.float32)
    return normalised


class LocalMiniLMClient:
    """all-MiniLM-L6-v2 on this machine (numpy); the offline default.

    By default the model runs in worker processes, one per core (``providers.minilm_processes`` says why);
    ``worker_processes=0`` runs it in the calling thread instead (a one-off query, a machine without
    ``spawn``).  Both give the same vectors.
    """

    def __init__(self, batch_size: int = 32, worker_processes: int | None = None) -> None:
        from providers.local_minilm import MODEL_ID, MiniLMEncoder
        from providers.minilm_processes import shared_pool

        if worker_processes is not None and worker_processes < 0:
            raise ValueError(f"worker_processes must be 0 (in-process) or more, got {worker_processes}")
        self.model_id = MODEL_ID
        self._batch_size = batch_size
        self._encode = MiniLMEncoder.load().encode if worker_processes == 0 else shared_pool(worker_processes).encode

    def embed(self, texts: Sequence[str]) -> Vectors:
        return self._encode(list(texts), batch_size=self._batch_size)


class WorkersAIEmbeddingClient:
    """Cloudflare Workers AI ``@cf/baai/bge-small-en-v1.5``, pooling always sent explicitly."""

    provider = "workers-ai"
    max_texts_per_request = 100

    def __init__(
        self,
        *,
        http: httpx.Client,
        account_id: str,
        model: str = "@cf/baai/bge-small-en-v1.5",
        pooling: str = "cls",
        retry: RetryPolicy | None = None,
    ) -> None:
        if pooling not in ("cls", "mean"):
            raise ValueError("pooling must be 'cls' or 'mean'")
        self._http = http
        self._path = f"/client/v4/accounts/{account_id}/ai/run/{model}"
        self._pooling = pooling
        self._retry = retry or RetryPolicy()
        self.model_id = f"{model}#{pooling}"

    def embed(self, texts: Sequence[str]) -> Vectors:
        parts = [
            self._embed_part(list(texts[i : i + self.max_texts_per_request]))
            for i in range(0, len(texts), self.max_texts_per_request)
        ]
        return np.vstack(parts) if parts else np.zeros((0, 384), dtype=np.float32)

    def _embed_part(self, texts: list[str]) -> Vectors:
        body = self._retry.call(
            lambda: send_json(
                self._http,
                "POST",
                self._path,
                provider=self.provider,
                json_body={"text": texts, "pooling": self._pooling},
            )
        )
        result = body.get("result") if isinstance(body, dict) else None
        if not isinstance(result, dict) or not body.get("success", True):
            raise InvalidProviderOutputError("response has no 'result' object", provider=self.provider)
        if result.get("pooling") not in (None, self._pooling):
            raise InvalidProviderOutputError(
                f"asked for {self._pooling} pooling, got {result.get('pooling')}", provider=self.provider
            )
        return _normalised(result.get("data"), len(texts), self.provider)


class OpenAICompatibleEmbeddingClient:
    """Any ``/v1/embeddings`` endpoint in OpenAI's shape (OpenAI, vLLM, Ollama, TEI, ...)."""

    provider = "openai-embeddings"

    def __init__(
        self,
        *,
        http: httpx.Client,
        model: str,
        dimensions: int | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._http = http
        self._model = model
        self._dimensions = dimensions
        self._retry = retry or RetryPolicy()
        self.model_id = model if dimensions is None else f"{model}@{dimensions}"

    def embed(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self._dimensions or 0), dtype=np.float32)
        payload: dict[str, object] = {"model": self._model, "input": list(texts)}
        if self._dimensions is not None:
            payload["dimensions"] = self._dimensions
        body = self._retry.call(
            lambda: send_json(self._http, "POST", "embeddings", provider=self.provider, json_body=payload)
        )
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list):
            raise InvalidProviderOutputError("response has no 'data' list", provider=self.provider)
        try:
            ordered = sorted(data, key=lambda item: int(item["index"]))
            rows = [item["embedding"] for item in ordered]
        except (KeyError, TypeError, ValueError):
            raise InvalidProviderOutputError("malformed embedding items", provider=self.provider) from None
        return _normalised(rows, len(texts), self.provider)
