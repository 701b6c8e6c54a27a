"""Cloudflare Workers AI: ``@cf/baai/bge-small-en-v1.5`` embeddings (384-d, ``mean`` or ``cls`` pooling).

The ``result`` reports ``usage`` (the input tokens, summed over the texts) so a client can record its spend,
and the same count prices the call ($0.02 per million tokens) once the answer is delivered.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from sandbox.gateway import CHARGE_KEY, FAULT_KEY
from sandbox.generate import count_tokens
from sandbox.prices import WORKERS_AI_BGE_SMALL, token_charge
from sandbox.providers import error_response, read_json
from sandbox.vectors import DIMENSIONS, embed_many

router = APIRouter(tags=["workers-ai"])

MAX_TEXTS = 100
POOLINGS = ("mean", "cls")


@router.post("/client/v4/accounts/{account_id}/ai/run/@cf/baai/bge-small-en-v1.5")
async def bge_small(account_id: str, request: Request) -> JSONResponse:
    payload = await read_json(request)
    if not isinstance(payload, dict):
        return error_response("workers_ai", 400, "invalid_request", "Request body must be a JSON object")
    raw = payload.get("text")
    texts = [raw] if isinstance(raw, str) else raw
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        return error_response("workers_ai", 400, "invalid_request", "`text` must be a string or an array of strings")
    if len(texts) > MAX_TEXTS:
        return error_response("workers_ai", 400, "invalid_request", f"`text` accepts at most {MAX_TEXTS} items")
    pooling = payload.get("pooling", "mean")
    if pooling not in POOLINGS:
        return error_response("workers_ai", 400, "invalid_request", "`pooling` must be `mean` or `cls`")
    vectors = embed_many(texts, pooling)
    if request.scope.pop(FAULT_KEY, None) == "invalid_output":
        vectors = [v[:-1] for v in vectors]  # data no longer matches the announced shape
    tokens = sum(count_tokens(t) for t in texts)
    request.scope[CHARGE_KEY] = token_charge("workers_ai", WORKERS_AI_BGE_SMALL, tokens)
    return JSONResponse(
        {
            "result": {
                "shape": [len(texts), DIMENSIONS],
                "data": vectors,
                "pooling": pooling,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
            "success": True,
            "errors": [],
            "messages": [],
        }
    )
