"""An embedding provider that answers instantly, to measure the engine's own cost per company."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import numpy.typing as npt
from prefect.blocks.core import Block
from pydantic import Field

from blocks.batching import LOCAL_MODEL_CALLS_PER_BATCH, calls_per_batch_field

DIMENSION = 384


class InstantEmbeddingClient:
    model_id = "bench-instant-v1"
    #: the names the dry-run estimator reads off an embedding client (a free provider: no price, no spend)
    provider = "local"
    price_model = model_id

    def __init__(self) -> None:
        self.calls = 0

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        self.calls += 1
        vectors = np.zeros((len(texts), DIMENSION), dtype=np.float32)
        vectors[np.arange(len(texts)), [len(t) % DIMENSION for t in texts]] = 1.0
        return vectors


class InstantEmbeddings(Block):
    _block_type_name: ClassVar[str] = "Bench Instant Embeddings"
    _block_type_slug: ClassVar[str] = "bench-instant-embeddings"

    concurrency_tag: str = Field(default="bench-instant")
    #: the local model's default, so the engine runs as it does for a local-model action
    calls_per_batch: int = calls_per_batch_field(LOCAL_MODEL_CALLS_PER_BATCH)

    def get_client(self) -> InstantEmbeddingClient:
        return _CLIENT


_CLIENT = InstantEmbeddingClient()


def register(limit: int) -> str:
    from deployments.provision_limits import provision_limits

    InstantEmbeddings.register_type_and_schema()
    InstantEmbeddings().save("default", overwrite=True)
    provision_limits({"bench-instant": limit})
    return "bench-instant-embeddings/default"
