"""Embedding clients behind one small interface: the local MiniLM model and two HTTP APIs.

``model_id`` names the vector space a client produces; it is stored with every vector.  For Workers AI the
pooling is part of it (``...#cls``), because mean- and cls-pooled bge vectors are not comparable.

Money: the two HTTP clients are paid per input token and implement ``PaidEmbeddingClient``: besides ``embed``
they offer ``embed_with_usage(texts, usage)``, which adds the input tokens of every answer the provider billed
to ``usage`` *as the answer arrives*.  A sink rather than a return value, because a billed answer must still
be counted when the client then rejects it (vectors of the wrong shape) or retries it (a 2xx body cut in
transit): the caller settles what ``usage`` holds however the call ends.  The local model is free and has no
such method, so the batch handler never meters it (``tasks.embeddings``).

Tokens come from the answer's ``usage.prompt_tokens`` (Workers AI: ``result.usage.prompt_tokens``).  An answer
without it (older Workers AI responses, some self-hosted OpenAI-compatible servers), or a 2xx body that could
not be read, is counted at ``worst_case_tokens``: each text's UTF-8 bytes plus two special tokens, capped at the
model's input limit.  That bound is what was reserved, so an estimate never lets spend pass a budget; it
overstates real use (3-5 bytes per token) rather than understate it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import httpx
import numpy as np
import numpy.typing as npt

from core.errors import InvalidProviderOutputError, MalformedResponseError
from providers.http import RetryPolicy, send_json

Vectors = npt.NDArray[np.float32]

#: bge-small reads at most 512 tokens; with [CLS] and [SEP] no text is billed more than this
BGE_MAX_TOKENS_PER_TEXT = 514
#: tokens a tokenizer may add to a text besides its own ([CLS] and [SEP] for BERT-style models)
SPECIAL_TOKENS = 2


class EmbeddingClient(Protocol):
    model_id: str

    def embed(self, texts: Sequence[str]) -> Vectors:
        """Unit-norm float32 vectors, one row per text, in order."""
        ...


@dataclass
class EmbeddingUsage:
    """Input tokens the provider billed, answer by answer (one per HTTP answer it charges for)."""

    input_tokens: int = 0
    answers: int = 0
    #: answers whose tokens are ``worst_case_tokens`` because the answer did not say
    estimated_answers: int = 0

    def add(self, tokens: int, *, estimated: bool = False) -> None:
        self.input_tokens += tokens
        self.answers += 1
        self.estimated_answers += int(estimated)


@runtime_checkable
class PaidEmbeddingClient(EmbeddingClient, Protocol):
    """An embedding API billed per input token."""

    #: the spend account and price list its calls go to (``workers-ai``, ``openai``)
    provider: str
    #: the model as the price list names it
    price_model: str
    #: the most tokens one text can be billed (the model truncates longer input); None: no cap
    max_tokens_per_text: int | None

    def embed_with_usage(self, texts: Sequence[str], usage: EmbeddingUsage) -> Vectors:
        """``embed``, adding the tokens of every billed answer to ``usage`` (even when it then raises)."""
        ...


def text_tokens_bound(text: str, cap: int | None) -> int:
    """The most tokens one text can cost: byte-level tokenizers emit at most one token per UTF-8 byte."""
    bound = len(text.encode("utf-8")) + SPECIAL_TOKENS
    return bound if cap is None else min(bound, cap)


def worst_case_tokens(texts: Sequence[str], cap: int | None) -> int:
    """The most input tokens a request with ``texts`` can be billed."""
    return sum(text_tokens_bound(text, cap) for text in texts)


def reported_tokens(usage: Any) -> int | None:
    """``usage.prompt_tokens`` when the answer carries a sane one."""
    tokens = usage.get("prompt_tokens") if isinstance(usage, dict) else None
    return tokens if isinstance(tokens, int) and not isinstance(tokens, bool) and tokens >= 0 else None


def billed_answer(
    send: Callable[[], Any],
    texts: Sequence[str],
    cap: int | None,
    usage: EmbeddingUsage,
    tokens_of: Callable[[Any], int | None],
) -> Any:
    """One attempt of a paid request: its answer's tokens go to ``usage`` before anything can reject it.

    Runs inside the retry loop, so every attempt the provider billed is counted, not only the last.  A 2xx body
    that is not JSON (``MalformedResponseError``) was billed too, at tokens nobody can read: the bound.
    """
    try:
        body = send()
    except MalformedResponseError:
        usage.add(worst_case_tokens(texts, cap), estimated=True)
        raise
    tokens = tokens_of(body)
    if tokens is None:
        usage.add(worst_case_tokens(texts, cap), estimated=True)
    else:
        usage.add(tokens)
    return body


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
    """Cloudflare Workers AI ``@cf/baai/bge-small-en-v1.5``, pooling always sent explicitly; $0.02 per M tokens."""

    provider = "workers-ai"
    max_texts_per_request = 100
    max_tokens_per_text: int | None = BGE_MAX_TOKENS_PER_TEXT

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
        self.price_model = model
        self.model_id = f"{model}#{pooling}"

    def embed(self, texts: Sequence[str]) -> Vectors:
        return self.embed_with_usage(texts, EmbeddingUsage())

    def embed_with_usage(self, texts: Sequence[str], usage: EmbeddingUsage) -> Vectors:
        parts = [
            self._embed_part(list(texts[i : i + self.max_texts_per_request]), usage)
            for i in range(0, len(texts), self.max_texts_per_request)
        ]
        return np.vstack(parts) if parts else np.zeros((0, 384), dtype=np.float32)

    def _embed_part(self, texts: list[str], usage: EmbeddingUsage) -> Vectors:
        def send() -> Any:
            return send_json(
                self._http,
                "POST",
                self._path,
                provider=self.provider,
                json_body={"text": texts, "pooling": self._pooling},
            )

        body = self._retry.call(lambda: billed_answer(send, texts, self.max_tokens_per_text, usage, _workers_tokens))
        result = body.get("result") if isinstance(body, dict) else None
        if not isinstance(result, dict) or not body.get("success", True):
            raise InvalidProviderOutputError("response has no 'result' object", provider=self.provider)
        if result.get("pooling") not in (None, self._pooling):
            raise InvalidProviderOutputError(
                f"asked for {self._pooling} pooling, got {result.get('pooling')}", provider=self.provider
            )
        return _normalised(result.get("data"), len(texts), self.provider)


def _workers_tokens(body: Any) -> int | None:
    result = body.get("result") if isinstance(body, dict) else None
    return reported_tokens(result.get("usage")) if isinstance(result, dict) else None


def _openai_tokens(body: Any) -> int | None:
    return reported_tokens(body.get("usage")) if isinstance(body, dict) else None


SELF_HOSTED = "self-hosted"


class OpenAICompatibleEmbeddingClient:
    """Any ``/v1/embeddings`` endpoint in OpenAI's shape (OpenAI, vLLM, Ollama, TEI, ...).

    Priced as OpenAI prices the model (``genai-prices``, provider ``openai``); a self-hosted model unknown there
    needs a spend-policy price (0 for a free one) or ``allow_unpriced``.
    """

    provider = "openai"
    #: the API refuses over-long input rather than truncating it, so no cap below a text's own bound
    max_tokens_per_text: int | None = None

    def __init__(
        self,
        *,
        http: httpx.Client,
        model: str,
        dimensions: int | None = None,
        retry: RetryPolicy | None = None,
        self_hosted: bool = False,
    ) -> None:
        self._http = http
        self._model = model
        self._dimensions = dimensions
        self._retry = retry or RetryPolicy()
        if self_hosted:
            self.provider = SELF_HOSTED  # a server of your own bills nothing (``core.pricing.FREE_PROVIDERS``)
        self.price_model = model
        self.model_id = model if dimensions is None else f"{model}@{dimensions}"

    def embed(self, texts: Sequence[str]) -> Vectors:
        return self.embed_with_usage(texts, EmbeddingUsage())

    def embed_with_usage(self, texts: Sequence[str], usage: EmbeddingUsage) -> Vectors:
        if not texts:
            return np.zeros((0, self._dimensions or 0), dtype=np.float32)
        payload: dict[str, object] = {"model": self._model, "input": list(texts)}
        if self._dimensions is not None:
            payload["dimensions"] = self._dimensions

        def send() -> Any:
            return send_json(self._http, "POST", "embeddings", provider=self.provider, json_body=payload)

        body = self._retry.call(lambda: billed_answer(send, texts, self.max_tokens_per_text, usage, _openai_tokens))
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list):
            raise InvalidProviderOutputError("response has no 'data' list", provider=self.provider)
        try:
            ordered = sorted(data, key=lambda item: int(item["index"]))
            rows = [item["embedding"] for item in ordered]
        except (KeyError, TypeError, ValueError):
            raise InvalidProviderOutputError("malformed embedding items", provider=self.provider) from None
        return _normalised(rows, len(texts), self.provider)
