"""Anthropic Messages API and Message Batches.

A batch's results are computed at creation (each item may meet its own ``invalid_output``, ``fail_run``,
``expire`` or ``cancel`` fault, matched against that item alone) and released when ``job_duration_s`` has passed,
or shortly after a cancel. Batches are listed newest first, paged with ``before_id``/``after_id`` as the API does.
Level and classification answers follow their question's truth, off at the model's noise rate. A request that
carries the web search tool gets one search (a ``server_tool_use`` and a ``web_search_tool_result`` block before
the text) and pays for it. A message is priced by its usage; a batch item's price (50% of the tokens, the
searches at full price) is fixed at creation and billed when the batch ends, if the item succeeded.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from sandbox.classify import parse_company
from sandbox.faults import ITEM_FAULTS
from sandbox.gateway import CHARGE_KEY, FAULT_KEY, TOKENS_KEY
from sandbox.generate import chat_reply, count_tokens
from sandbox.hashing import stable_hash
from sandbox.jobs import MAX_LIST_LIMIT, BatchItem, Clock, MessageBatch, new_batch_id
from sandbox.prices import Charge, token_charge
from sandbox.providers import error_response, last_user_text, message_text, read_json
from sandbox.state import SandboxState, get_state

router = APIRouter(tags=["anthropic"])
State = Annotated[SandboxState, Depends(get_state)]

CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
MAX_BATCH_REQUESTS = 100_000
DEFAULT_LIST_LIMIT = 20
WEB_SEARCH_TOOL = re.compile(r"^web_search_\d{8}$")  # web_search_20250305 and its later versions
WEB_SEARCH_NAME = "web_search"
_DOMAIN = re.compile(r"\b(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,}\b", re.IGNORECASE)


def params_problem(params: Any, where: str = "") -> str | None:
    """Why Messages ``params`` are invalid, or ``None``."""
    if not isinstance(params, dict):
        return f"{where}params: must be an object" if where else "Request body must be a JSON object"
    if not isinstance(params.get("model"), str) or not params["model"]:
        return f"{where}model: Field required"
    max_tokens = params.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        return f"{where}max_tokens: Field required (a positive integer)"
    messages = params.get("messages")
    if not isinstance(messages, list) or not messages:
        return f"{where}messages: must be a non-empty list"
    if not all(isinstance(m, dict) and m.get("role") in ("user", "assistant") for m in messages):
        return f"{where}messages: each message needs role `user` or `assistant`"
    return _tools_problem(params.get("tools"), where)


def _tools_problem(tools: Any, where: str) -> str | None:
    """Why ``tools`` is invalid (a list of objects, each with a string ``type`` and ``name``), or ``None``."""
    if tools is None:
        return None
    if not isinstance(tools, list):
        return f"{where}tools: Input should be a valid list"
    for index, tool in enumerate(tools):
        at = f"{where}tools.{index}"
        if not isinstance(tool, dict):
            return f"{at}: Input should be an object"
        for key in ("type", "name"):
            if not isinstance(tool.get(key), str) or not tool[key]:
                return f"{at}.{key}: Field required (a non-empty string)"
        if WEB_SEARCH_TOOL.match(tool["type"]):
            if tool["name"] != WEB_SEARCH_NAME:
                return f"{at}.name: Input should be '{WEB_SEARCH_NAME}'"
            max_uses = tool.get("max_uses")
            if max_uses is not None and (not isinstance(max_uses, int) or isinstance(max_uses, bool) or max_uses < 1):
                return f"{at}.max_uses: Input should be greater than 0"
    return None


def uses_web_search(params: dict[str, Any]) -> bool:
    """Whether valid ``params`` offer the model the server-side web search tool."""
    tools = params.get("tools") or []
    return any(WEB_SEARCH_TOOL.match(tool["type"]) for tool in tools)


def _web_search_blocks(params: dict[str, Any]) -> list[dict[str, Any]]:
    """The one search the sandbox's model makes: its ``server_tool_use`` block and its result block.

    The query is the company's name and website when the last user message has ``Name:``/``Website:`` lines
    (a classification request), else its first words; the result points at the company's site.
    """
    text = last_user_text(params["messages"])
    company = parse_company(text)
    query = " ".join(part for part in (company.name, company.website) if part) or " ".join(text.split()[:12])
    found = _DOMAIN.search(company.website or text)
    domain = found.group(0).lower().removeprefix("www.") if found else "search.sandbox.example"
    tool_use_id = f"srvtoolu_sandbox_{stable_hash('web-search', query, text):016x}"
    result = {
        "type": "web_search_result",
        "url": f"https://{domain}/",
        "title": f"{company.name or query or domain} (sandbox search result)",
        "encrypted_content": "sandbox",
        "page_age": None,
    }
    return [
        {"type": "server_tool_use", "id": tool_use_id, "name": WEB_SEARCH_NAME, "input": {"query": query}},
        {"type": "web_search_tool_result", "tool_use_id": tool_use_id, "content": [result]},
    ]


def message_for(params: dict[str, Any], *, invalid: bool, noise: float = 0.0) -> dict[str, Any]:
    """The Messages API answer to valid ``params`` (``noise``: the model's rate of off-by-one levels)."""
    system = params.get("system")
    texts = [("system", message_text(system))] if system else []
    texts += [(m["role"], message_text(m.get("content"))) for m in params["messages"]]
    text = chat_reply(texts, model=params["model"], noise=noise, invalid=invalid)
    stop_reason = "end_turn"
    if count_tokens(text) > params["max_tokens"]:
        text = " ".join(text.split()[: params["max_tokens"]])
        stop_reason = "max_tokens"
    usage: dict[str, Any] = {
        "input_tokens": sum(count_tokens(t) for _, t in texts),
        "output_tokens": count_tokens(text),
    }
    content: list[dict[str, Any]] = []
    if uses_web_search(params):
        content += _web_search_blocks(params)
        usage["server_tool_use"] = {"web_search_requests": 1, "web_fetch_requests": 0}
    content.append({"type": "text", "text": text})
    return {
        "id": f"msg_sandbox_{uuid.uuid4().hex[:24]}",
        "type": "message",
        "role": "assistant",
        "model": params["model"],
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": usage,
    }


def message_charge(message: dict[str, Any], *, batch: bool = False) -> Charge:
    """The list price of an answered message, by the usage it reports (tokens, and web searches)."""
    usage = message["usage"]
    searches = int(usage.get("server_tool_use", {}).get("web_search_requests", 0))
    return token_charge(
        "anthropic",
        message["model"],
        usage["input_tokens"],
        usage["output_tokens"],
        batch=batch,
        web_searches=searches,
    )


@router.post("/v1/messages")
async def create_message(request: Request, state: State) -> JSONResponse:
    payload = await read_json(request)
    problem = params_problem(payload)
    if problem is not None:
        return error_response("anthropic", 400, "invalid_request", problem)
    if payload.get("stream"):
        return error_response("anthropic", 400, "invalid_request", "stream=true is not supported by the sandbox")
    invalid = request.scope.pop(FAULT_KEY, None) == "invalid_output"
    message = message_for(payload, invalid=invalid, noise=state.config.anthropic.noise_for(payload["model"]))
    usage = message["usage"]
    request.scope[TOKENS_KEY] = usage["input_tokens"] + usage["output_tokens"]
    request.scope[CHARGE_KEY] = message_charge(message)
    return JSONResponse(message)


def _batch_problem(payload: Any) -> str | None:
    if not isinstance(payload, dict) or not isinstance(payload.get("requests"), list):
        return "requests: Field required"
    requests = payload["requests"]
    if not 1 <= len(requests) <= MAX_BATCH_REQUESTS:
        return f"requests: must contain between 1 and {MAX_BATCH_REQUESTS} items"
    seen: set[str] = set()
    for index, item in enumerate(requests):
        where = f"requests.{index}."
        if not isinstance(item, dict):
            return f"{where[:-1]}: must be an object"
        custom_id = item.get("custom_id")
        if not isinstance(custom_id, str) or not CUSTOM_ID.match(custom_id):
            return f"{where}custom_id: String should match pattern '{CUSTOM_ID.pattern}'"
        if custom_id in seen:
            return f"{where}custom_id: Duplicate custom_id {custom_id!r}; custom_id values must be unique"
        seen.add(custom_id)
        problem = params_problem(item.get("params"), f"{where}params.")
        if problem is not None:
            return problem
    return None


def _item(state: SandboxState, item: dict[str, Any]) -> BatchItem:
    """One batch request's outcome, with its own fault draw (``match`` sees only this item)."""
    text = json.dumps(item, ensure_ascii=False)
    fault = state.faults.pick("anthropic", "batches_create", text, ITEM_FAULTS)
    if fault is not None:
        state.stats.fault("anthropic", "batches_create", fault.kind)
    if fault is not None and fault.kind == "fail_run":
        error = {"type": "api_error", "message": "Sandbox injected item failure"}
        return BatchItem(item["custom_id"], "errored", {"type": "errored", "error": {"type": "error", "error": error}})
    if fault is not None and fault.kind == "expire":
        return BatchItem(item["custom_id"], "expired", {"type": "expired"})
    if fault is not None and fault.kind == "cancel":
        return BatchItem(item["custom_id"], "canceled", {"type": "canceled"})
    params = item["params"]
    invalid = fault is not None and fault.kind == "invalid_output"
    message = message_for(params, invalid=invalid, noise=state.config.anthropic.noise_for(params["model"]))
    result = {"type": "succeeded", "message": message}
    return BatchItem(item["custom_id"], "succeeded", result, message_charge(message, batch=True))


def _results_url(request: Request, batch_id: str) -> str:
    return f"{request.base_url}v1/messages/batches/{batch_id}/results"


def _not_found(batch_id: str) -> JSONResponse:
    return error_response("anthropic", 404, "not_found", f"message batch {batch_id!r} not found")


@router.post("/v1/messages/batches")
async def create_batch(request: Request, state: State) -> JSONResponse:
    payload = await read_json(request)
    problem = _batch_problem(payload)
    if problem is not None:
        return error_response("anthropic", 400, "invalid_request", problem)
    items = [_item(state, item) for item in payload["requests"]]
    now = time.monotonic()
    batch = MessageBatch(new_batch_id(), items, Clock(now, time.time()), state.config.anthropic.job_duration_s)
    state.batches.add(batch)
    return JSONResponse(batch.to_json(now, _results_url(request, batch.batch_id)))


def _list_problem(request: Request) -> tuple[str | None, int]:
    """Why the list query is invalid (or ``None``), and the page size."""
    params = request.query_params
    raw = params.get("limit")
    if raw is None:
        limit = DEFAULT_LIST_LIMIT
    else:
        try:
            limit = int(raw)
        except ValueError:
            return "limit: Input should be a valid integer", 0
        if not 1 <= limit <= MAX_LIST_LIMIT:
            return f"limit: Input should be between 1 and {MAX_LIST_LIMIT}", 0
    if params.get("before_id") and params.get("after_id"):
        return "before_id and after_id cannot both be set", 0
    return None, limit


@router.get("/v1/messages/batches")
async def list_batches(request: Request, state: State) -> JSONResponse:
    """A page of batches, newest first: ``{"data", "has_more", "first_id", "last_id"}``."""
    problem, limit = _list_problem(request)
    if problem is not None:
        return error_response("anthropic", 400, "invalid_request", problem)
    before_id = request.query_params.get("before_id") or None
    after_id = request.query_params.get("after_id") or None
    try:
        page, has_more = state.batches.page(limit, before_id=before_id, after_id=after_id)
    except KeyError:
        cursor = before_id or after_id
        return error_response("anthropic", 400, "invalid_request", f"invalid cursor: message batch {cursor!r}")
    now = time.monotonic()
    data = [batch.to_json(now, _results_url(request, batch.batch_id)) for batch in page]
    return JSONResponse(
        {
            "data": data,
            "has_more": has_more,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
        }
    )


@router.get("/v1/messages/batches/{batch_id}")
async def retrieve_batch(batch_id: str, request: Request, state: State) -> JSONResponse:
    batch = state.batches.batches.get(batch_id)
    if batch is None:
        return _not_found(batch_id)
    return JSONResponse(batch.to_json(time.monotonic(), _results_url(request, batch_id)))


@router.get("/v1/messages/batches/{batch_id}/results")
async def batch_results(batch_id: str, state: State) -> Response:
    batch = state.batches.batches.get(batch_id)
    if batch is None:
        return _not_found(batch_id)
    if batch.processing_status(time.monotonic()) != "ended":
        return error_response("anthropic", 400, "invalid_request", f"message batch {batch_id!r} has not ended")
    lines = "".join(json.dumps(line) + "\n" for line in batch.result_lines())
    return Response(lines, media_type="application/binary")


@router.post("/v1/messages/batches/{batch_id}/cancel")
async def cancel_batch(batch_id: str, request: Request, state: State) -> JSONResponse:
    """Start canceling a batch in progress; an ended batch is returned unchanged."""
    batch = state.batches.batches.get(batch_id)
    if batch is None:
        return _not_found(batch_id)
    now = time.monotonic()
    if batch.processing_status(now) == "in_progress":
        batch.cancel_at = now
    return JSONResponse(batch.to_json(now, _results_url(request, batch_id)))
