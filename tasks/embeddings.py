"""The ``generate_embeddings`` batch handler: embed what changed, skip what did not.

Idempotent by construction: a company whose current text already has a vector of this model (same SHA-256) is
skipped without a provider call, so rerunning over the same companies costs nothing and writes nothing new.

Money: a paid client (``providers.embeddings.PaidEmbeddingClient``: Workers AI, OpenAI-compatible) is called
through the batch's meter.  Its worst case is reserved first (each text's UTF-8 bytes plus two, capped at the
model's input limit: 514 tokens for bge-small), then the tokens the provider reports are priced (Workers AI
$0.02 per million; OpenAI-compatible at the model's ``genai-prices`` price) and the call's cost is split over
its companies in integer shares proportional to their texts' bytes, the remainder on the last company, so
the shares add up to the call's cost exactly.  The last company's row also carries the call (``calls=1``, the
others 0), so the ledger's calls add up to the provider's.  The local model is free: it never reaches the
meter, nor the database for money.
"""

from __future__ import annotations

from collections.abc import Sequence

from blocks.loading import load_embedding_block
from core.errors import InvalidProviderOutputError
from core.pricing import UnpricedModelError
from core.schema import OutcomeStatus
from core.search import vector_to_bytes
from core.spend import LedgerEntry
from core.store import CompanyResult, embedding_inputs, upsert_embeddings
from core.text import embedding_text, text_sha256
from providers.embeddings import EmbeddingUsage, PaidEmbeddingClient, Vectors, worst_case_tokens
from tasks.batch import BatchContext, register_handler
from tasks.metering import Meter


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
    todo_texts = [texts[cid] for cid in todo]
    if isinstance(client, PaidEmbeddingClient):
        vectors = embed_metered(ctx.meter, client, todo, todo_texts)
    else:
        vectors = client.embed(todo_texts)  # local: free, and per-millisecond sensitive
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


def embed_metered(
    meter: Meter, client: PaidEmbeddingClient, company_ids: Sequence[int], texts: Sequence[str]
) -> Vectors:
    """One paid embedding call: reserve its worst case, call, settle what the provider billed.

    What was billed is settled even when the call then fails (an answer the client rejected was still
    billed); a call the provider billed nothing for (429, 5xx, connection lost) gives the reservation back.
    Raises ``BudgetReachedError`` without calling when the worst case could pass a budget.
    """
    worst, _ = embedding_price(meter, client, worst_case_tokens(texts, client.max_tokens_per_text))
    usage = EmbeddingUsage()
    with meter.call(client.provider, worst) as bill:
        try:
            return client.embed_with_usage(texts, usage)
        finally:
            if usage.answers:
                cost, unpriced = embedding_price(meter, client, usage.input_tokens)
                bill.add(*ledger_shares(client, company_ids, texts, usage.input_tokens, cost, unpriced))


def embedding_price(meter: Meter, client: PaidEmbeddingClient, input_tokens: int) -> tuple[int, bool]:
    """The call's cost and whether it is unpriced (a model without a price, run with ``allow_unpriced``)."""
    try:
        return meter.prices.embedding_cost(client.provider, client.price_model, input_tokens), False
    except UnpricedModelError:
        if not meter.allow_unpriced:
            raise
        return 0, True


def ledger_shares(
    client: PaidEmbeddingClient,
    company_ids: Sequence[int],
    texts: Sequence[str],
    input_tokens: int,
    cost_nanousd: int,
    unpriced: bool,
) -> list[LedgerEntry]:
    """Each company's share of one call: cost and tokens split by the bytes of its text, exactly."""
    sizes = [len(text.encode("utf-8")) for text in texts]
    costs = split_exactly(cost_nanousd, sizes)
    tokens = split_exactly(input_tokens, sizes)
    last = len(company_ids) - 1
    return [
        LedgerEntry(
            company_id=cid,
            provider=client.provider,
            model=client.price_model,
            cost_nanousd=costs[i],
            calls=int(i == last),
            input_tokens=tokens[i],
            input_bytes=sizes[i],
            unpriced=unpriced,
        )
        for i, cid in enumerate(company_ids)
    ]


def split_exactly(total: int, weights: Sequence[int]) -> list[int]:
    """``total`` in integer shares proportional to ``weights`` (rounded down), the remainder on the last.

    The shares always sum to ``total``: a ledger summed per company equals the ledger summed per call.
    """
    if not weights:
        return []
    whole = sum(weights)
    if whole <= 0:
        return [0] * (len(weights) - 1) + [total]
    shares = [total * weight // whole for weight in weights[:-1]]
    return [*shares, total - sum(shares)]
