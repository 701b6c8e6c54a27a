"""The HTTP embedding blocks against the sandbox: pooling sent explicitly, model ids kept apart."""

from __future__ import annotations

import numpy as np
import pytest

from blocks.embeddings import WorkersAIEmbeddings
from blocks.loading import clear_block_cache, load_database, load_embedding_block
from core.search import VectorIndex
from flows.engine import BulkActionSummary
from flows.generate_embeddings import DEFAULT_EMBEDDING_PROVIDER, generate_embeddings
from sandbox.server import SandboxServer
from tests.helpers import seed

TOKEN = "cf-token-that-must-stay-secret"


def test_workers_ai_sends_its_pooling_and_stores_vectors_under_their_own_model_id(
    provider_sandbox: SandboxServer,
) -> None:
    provider_sandbox.reset(config=True)
    WorkersAIEmbeddings(account_id="acct-1", api_token=TOKEN, base_url=provider_sandbox.url, pooling="cls").save(
        "sandbox", overwrite=True
    )
    clear_block_cache()
    db = load_database("default")
    ids = seed(db, 12, seed_value=2001)

    bge = generate_embeddings(company_ids=ids, provider="workers-ai-embeddings/sandbox")
    minilm = generate_embeddings(company_ids=ids)

    assert isinstance(bge, BulkActionSummary) and isinstance(minilm, BulkActionSummary)
    assert bge.succeeded == 12 and minilm.succeeded == 12  # another model is another vector, not a skip
    requests = provider_sandbox.requests(provider="workers_ai")
    assert requests and all(r["status"] == 200 for r in requests)
    assert all("/accounts/acct-1/ai/run/@cf/baai/bge-small-en-v1.5" in r["path"] for r in requests)

    client = load_embedding_block("workers-ai-embeddings/sandbox").get_client()
    assert client.model_id == "@cf/baai/bge-small-en-v1.5#cls"
    with db.session() as session:
        index = VectorIndex.load(session, client.model_id)
    assert set(ids) <= {int(i) for i in index.company_ids}
    assert np.allclose(np.linalg.norm(index.matrix, axis=1), 1.0, atol=1e-5)
    local = load_embedding_block(DEFAULT_EMBEDDING_PROVIDER).get_client()
    with pytest.raises(ValueError, match="cannot be compared"):
        index.top_k(local.embed(["a bakery"])[0], query_model_id=local.model_id)
