"""OpenAI-compatible endpoints: chat completions (GROQ under ``/openai/v1``, OpenAI under ``/v1``) and
embeddings.

Replies are deterministic (see :mod:`sandbox.generate`): a scoring prompt, whose last user message mentions
"level", gets ``{"level": ..., "reasoning": ...}`` with the question's truth level (off by one step at the
model's configured noise rate); other prompts get a short sentence. Each answered call is priced by the usage
it reports (:mod:`sandbox.prices`).
"""

from __future__ import annotations

import base64
import json
import struct
import time
import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from sandbox.config import Provider
from sandbox.gateway import CHARGE_KEY, FAULT_KEY, TOKENS_KEY
from sandbox.generate import asks_for_level, chat_reply, count_tokens
from sandbox.prices import token_charge
from sandbox.providers import error_response, last_user_text, message_text, new_request_id, read_json
from sandbox.state import get_state
from sandbox.vectors import embed_many

router = APIRouter(tags=["openai-compatible"])

OPENAI_EMBEDDING_SPACE = "mean"  # the same vectors as Workers AI with mean pooling


def _chat_problem(payload: Any) -> str | None:
    if not isinstance(payload, dict):
        return "Request body must be a JSON object"
    if not isinstance(payload.get("model"), str) or not payload["model"]:
        return "`model` is a required property"
    messages = payload.get("messages")
    if not isinstance(messages, list) or not messages:
        return "`messages` must be a non-empty array"
    if not all(isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages):
        return "every message needs a `role`"
    if payload.get("stream"):
        return "stream=true is not supported by the sandbox"
    return None


def chat_completion(
    provider: Provider, payload: dict[str, Any], *, invalid: bool, noise: float = 0.0
) -> dict[str, Any]:
    """The chat-completion object answering ``payload`` (``noise``: the model's rate of off-by-one levels)."""
    messages: list[dict[str, Any]] = payload["messages"]
    texts = [(m["role"], message_text(m.get("content"))) for m in messages]
    last_user = last_user_text(messages)
    content = chat_reply(texts, model=payload["model"], noise=noise, invalid=invalid)
    response_format = payload.get("response_format")
    wants_json = isinstance(response_format, dict) and response_format.get("type") in (
        "json_object",
        "json_schema",
    )
    if wants_json and not invalid and not asks_for_level(last_user):
        content = json.dumps({"reply": content, "sandbox": True})
    finish_reason = "stop"
    limit = payload.get("max_completion_tokens") or payload.get("max_tokens")
    if isinstance(limit, int) and limit > 0 and count_tokens(content) > limit:
        content = " ".join(content.split()[:limit])
        finish_reason = "length"
    prompt_tokens = sum(count_tokens(text) for _, text in texts)
    completion_tokens = count_tokens(content)
    usage: dict[str, Any] = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    body: dict[str, Any] = {
        "id": f"chatcmpl-sandbox-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": payload["model"],
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        ],
        "usage": usage,
        "system_fingerprint": "fp_sandbox",
    }
    if provider == "groq":
        usage.update(queue_time=0.0, prompt_time=0.0, completion_time=0.0, total_time=0.0)
        body["x_groq"] = {"id": new_request_id()}
    return body


async def _chat(provider: Provider, request: Request) -> JSONResponse:
    payload = await read_json(request)
    problem = _chat_problem(payload)
    if problem is not None:
        return error_response(provider, 400, "invalid_request", problem)
    invalid = request.scope.pop(FAULT_KEY, None) == "invalid_output"
    noise = get_state(request).config.section(provider).noise_for(payload["model"])
    body = chat_completion(provider, payload, invalid=invalid, noise=noise)
    usage = body["usage"]
    request.scope[TOKENS_KEY] = usage["total_tokens"]
    request.scope[CHARGE_KEY] = token_charge(
        provider, payload["model"], usage["prompt_tokens"], usage["completion_tokens"]
    )
    return JSONResponse(body)


@router.post("/openai/v1/chat/completions")
async def groq_chat_completions(request: Request) -> JSONResponse:
    return await _chat("groq", request)


@router.post("/v1/chat/completions")
async def openai_chat_completions(request: Request) -> JSONResponse:
    return await _chat("openai", request)


def _float32_base64(vector: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


@router.post("/v1/embeddings")
async def embeddings(request: Request) -> JSONResponse:
    payload = await read_json(request)
    if not isinstance(payload, dict) or not isinstance(payload.get("model"), str):
        return error_response("openai", 400, "invalid_request", "`model` and `input` are required")
    raw = payload.get("input")
    texts = [raw] if isinstance(raw, str) else raw
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        return error_response("openai", 400, "invalid_request", "`input` must be a string or an array of strings")
    encoding = payload.get("encoding_format", "float")
    if encoding not in ("float", "base64"):
        return error_response("openai", 400, "invalid_request", "`encoding_format` must be float or base64")
    vectors = embed_many(texts, OPENAI_EMBEDDING_SPACE)
    if request.scope.pop(FAULT_KEY, None) == "invalid_output":
        vectors = [v[:-1] for v in vectors]  # a wrong dimension: what a broken model deployment returns
    tokens = sum(count_tokens(t) for t in texts)
    request.scope[TOKENS_KEY] = tokens
    request.scope[CHARGE_KEY] = token_charge("openai", payload["model"], tokens)  # no embedding model is priced
    data = [
        {"object": "embedding", "index": i, "embedding": _float32_base64(v) if encoding == "base64" else v}
        for i, v in enumerate(vectors)
    ]
    return JSONResponse(
        {
            "object": "list",
            "data": data,
            "model": payload["model"],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )
