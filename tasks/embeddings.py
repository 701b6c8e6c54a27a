"""The ``generate_embeddings`` batch handler: embed what changed, skip what did not.

Idempotent by construction: a company whose current text already has a vector of this model (same SHA-256) is
skipped without a provider call, so rerunning over the same companies costs nothing and writes nothing new.
"""

from __future__ import annotations

from collections.abc import Sequence

from blocks.loading import load_embedding_block
from core.errors import InvalidProviderOutputError
from core.schema import OutcomeStatus
from core.search import vector_to_bytes
from core.store import CompanyResult, embedding_inputs, upsert_embeddings
from core.text import embedding_text, text_sha256
from tasks.batch import BatchContext, register_handler


@register_handler("generate_embeddings")
def embed_batch(ctx: BatchContext, company_ids: Sequence[int]) -> list[CompanyResult]:
    client = load_embedding_block(ctx.provider).get_client()
    with ctx.database.read_session() as session:
        inputs = embedding_inputs(session, company_ids, client.model_id)
    texts = {row.id: embedding_text(row) for row in inputs}
    hashes = {cid: text_sha256(text) for cid, text in texts.items()}
    current = {row.id: row.current_sha256 for row in inputs}
    todo = [cid for cid in company_ids if cid in texts and current[cid] != hashes[cid]]
    results = [
        CompanyResult(cid, OutcomeStatus.SKIPPED, detail="unchanged text: vector is current", attempts=0)
        if cid in texts
        else CompanyResult(cid, OutcomeStatus.FAILED, "company no longer exists", 0, "CompanyNotFound", False)
        for cid in company_ids
        if cid not in todo
    ]
    if not todo:
        return results
    ctx.count_call()
    vectors = client.embed([texts[cid] for cid in todo])
    if vectors.shape[0] != len(todo):
        raise InvalidProviderOutputError(f"{len(todo)} texts gave {vectors.shape[0]} vectors")
    rows = [
        {
            "company_id": cid,
            "model_id": client.model_id,
            "dimension": int(vector.shape[0]),
            "text_sha256": hashes[cid],
            "text": texts[cid],
            "vector": vector_to_bytes(vector),
        }
        for cid, vector in zip(todo, vectors, strict=True)
    ]
    ctx.write_with_outcomes(lambda session: upsert_embeddings(session, rows))
    return results + [CompanyResult(cid, OutcomeStatus.SUCCEEDED, detail=client.model_id) for cid in todo]
