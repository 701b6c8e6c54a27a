"""Wire conventions shared by all endpoints of a provider: routes, authentication, error bodies, headers.

The gateway needs these before any handler runs (it answers 401 and 429 itself), so they live here rather than
in the per-provider handler modules. Shapes follow /work/shared/providers.md.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Any, Literal

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse

from sandbox.config import FaultKind, Provider
from sandbox.limits import format_groq_duration

ErrorKind = Literal["authentication", "invalid_request", "not_found", "rate_limit", "server", "timeout", "run_failed"]
ConcurrencyMode = Literal["requests", "active_runs", "none"]

MATCH_KEY_CHARS = 200
ANTHROPIC_VERSION_HEADER = "anthropic-version"


@dataclass(frozen=True)
class Route:
    """A provider endpoint as the gateway sees it.

    ``rate_limited``: counts toward ``requests_per_minute``. ``concurrency``: what ``max_concurrency`` caps
    there (in-flight requests, or for Parallel run creation the active runs). ``item_faults``: the
    output-level fault kinds the handler acts on for the request as a whole.
    """

    provider: Provider
    endpoint: str
    method: str
    pattern: re.Pattern[str]
    rate_limited: bool = True
    concurrency: ConcurrencyMode = "requests"
    item_faults: frozenset[FaultKind] = frozenset()


def _route(provider: Provider, endpoint: str, method: str, path: str, **kwargs: Any) -> Route:
    return Route(provider, endpoint, method, re.compile(f"^{path}$"), **kwargs)


_OUTPUT: frozenset[FaultKind] = frozenset({"invalid_output"})
_WORKERS_AI_BGE_SMALL = r"/client/v4/accounts/[^/]+/ai/run/@cf/baai/bge-small-en-v1\.5"

# Parallel limits run *creation* (2,000/min per key) and active runs, not status polls.
ROUTES: tuple[Route, ...] = (
    _route("parallel", "create_run", "POST", r"/v1/tasks/runs", concurrency="active_runs",
           item_faults=frozenset({"invalid_output", "fail_run"})),
    _route("parallel", "get_run", "GET", r"/v1/tasks/runs/[^/]+", rate_limited=False, concurrency="none"),
    _route("parallel", "get_result", "GET", r"/v1/tasks/runs/[^/]+/result", rate_limited=False,
           concurrency="none"),
    _route("groq", "chat_completions", "POST", r"/openai/v1/chat/completions", item_faults=_OUTPUT),
    _route("openai", "chat_completions", "POST", r"/v1/chat/completions", item_faults=_OUTPUT),
    _route("openai", "embeddings", "POST", r"/v1/embeddings", item_faults=_OUTPUT),
    _route("anthropic", "messages", "POST", r"/v1/messages", item_faults=_OUTPUT),
    _route("anthropic", "batches_create", "POST", r"/v1/messages/batches"),
    _route("anthropic", "batches_list", "GET", r"/v1/messages/batches"),
    _route("anthropic", "batches_retrieve", "GET", r"/v1/messages/batches/[^/]+"),
    _route("anthropic", "batches_results", "GET", r"/v1/messages/batches/[^/]+/results"),
    _route("anthropic", "batches_cancel", "POST", r"/v1/messages/batches/[^/]+/cancel"),
    _route("workers_ai", "embeddings", "POST", _WORKERS_AI_BGE_SMALL, item_faults=_OUTPUT),
)  # fmt: skip


def classify(method: str, path: str) -> Route | None:
    """The provider route of a request, or ``None`` (admin endpoints, unknown paths)."""
    for route in ROUTES:
        if route.method == method and route.pattern.match(path):
            return route
    return None


# --- authentication --------------------------------------------------------------------------------------


def _bearer(headers: Headers) -> str:
    scheme, _, token = headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def auth_error(provider: Provider, headers: Headers) -> tuple[int, ErrorKind, str] | None:
    """Check the credentials a provider requires; any non-empty key is accepted (this is a sandbox)."""
    if provider == "parallel":
        if not headers.get("x-api-key"):
            return 401, "authentication", "Missing x-api-key header"
    elif provider == "anthropic":
        if not headers.get("x-api-key") and not _bearer(headers):
            return 401, "authentication", "x-api-key header is required"
        if not headers.get(ANTHROPIC_VERSION_HEADER):
            return 400, "invalid_request", "anthropic-version: header is required"
    elif not _bearer(headers):
        return 401, "authentication", "Invalid API Key"
    return None


# --- error bodies ----------------------------------------------------------------------------------------

_OPENAI_ERRORS: dict[ErrorKind, tuple[str, str | None]] = {
    "authentication": ("invalid_request_error", "invalid_api_key"),
    "invalid_request": ("invalid_request_error", None),
    "not_found": ("invalid_request_error", "not_found"),
    "rate_limit": ("requests", "rate_limit_exceeded"),
    "server": ("internal_server_error", None),
    "timeout": ("internal_server_error", "timeout"),
    "run_failed": ("internal_server_error", None),
}
_ANTHROPIC_ERRORS: dict[ErrorKind, str] = {
    "authentication": "authentication_error",
    "invalid_request": "invalid_request_error",
    "not_found": "not_found_error",
    "rate_limit": "rate_limit_error",
    "server": "api_error",
    "timeout": "timeout_error",
    "run_failed": "api_error",
}
_CLOUDFLARE_CODES: dict[ErrorKind, int] = {
    "authentication": 10000,
    "invalid_request": 5006,
    "not_found": 7000,
    "rate_limit": 3040,
    "server": 3043,
    "timeout": 3007,
    "run_failed": 3043,
}


def new_ref_id() -> str:
    return f"ref_sandbox_{uuid.uuid4().hex[:20]}"


def error_body(provider: Provider, status: int, kind: ErrorKind, message: str) -> dict[str, Any]:
    """The provider's non-2xx body for ``kind``."""
    if provider == "parallel":
        return {"type": "error", "error": {"message": message, "ref_id": new_ref_id(), "detail": None}}
    if provider == "anthropic":
        error_type = "overloaded_error" if status == 529 else _ANTHROPIC_ERRORS[kind]
        return {
            "type": "error",
            "error": {"type": error_type, "message": message},
            "request_id": new_request_id(),
        }
    if provider == "workers_ai":
        return {
            "result": None,
            "success": False,
            "errors": [{"code": _CLOUDFLARE_CODES[kind], "message": message}],
            "messages": [],
        }
    error_type, code = _OPENAI_ERRORS[kind]
    return {"error": {"message": message, "type": error_type, "code": code}}


def error_response(provider: Provider, status: int, kind: ErrorKind, message: str) -> JSONResponse:
    """A handler's error answer in the provider's shape."""
    return JSONResponse(error_body(provider, status, kind, message), status_code=status)


async def read_json(request: Request) -> Any:
    """The request's JSON body, or ``None`` when it is empty or not JSON (handlers then answer 400/422)."""
    body = await request.body()
    try:
        return json.loads(body) if body else None
    except ValueError:
        return None


def rate_limit_message(provider: Provider, reason: str, limit: int | None, retry_after: float) -> str:
    """A 429 message in the provider's words (GROQ's starts with "Rate limit reached")."""
    if reason == "concurrency":
        what = "active task runs" if provider == "parallel" else "concurrent requests"
        return f"Rate limit reached: too many {what} (limit {limit}). Please try again in {retry_after:.1f}s."
    return (
        f"Rate limit reached for organization `org_sandbox` on requests per minute (RPM): Limit {limit}, "
        f"Used {limit}, Requested 1. Please try again in {retry_after:.1f}s."
    )


def new_request_id() -> str:
    return f"req_sandbox_{uuid.uuid4().hex[:24]}"


# --- informational rate-limit headers --------------------------------------------------------------------

# GROQ reports requests per *day* and tokens per *minute*; the sandbox reports these nominal free-tier values
# (providers.md) with live "remaining" counts, but enforces only requests_per_minute and max_concurrency.
NOMINAL_REQUESTS_PER_DAY = 1_000
NOMINAL_TOKENS_PER_MINUTE = 8_000


@dataclass(frozen=True)
class RateSnapshot:
    """What the provider's rate-limit headers report for one response."""

    requests_today: int
    day_reset_s: float
    tokens_last_minute: int
    tokens_reset_s: float
    requests_per_minute: int | None
    requests_in_window: int
    window_reset_s: float


def rate_headers(provider: Provider, snap: RateSnapshot) -> list[tuple[str, str]]:
    """Headers a provider puts on every response."""
    if provider in ("groq", "openai"):
        return [
            ("x-ratelimit-limit-requests", str(NOMINAL_REQUESTS_PER_DAY)),
            ("x-ratelimit-remaining-requests", str(max(0, NOMINAL_REQUESTS_PER_DAY - snap.requests_today))),
            ("x-ratelimit-reset-requests", format_groq_duration(snap.day_reset_s)),
            ("x-ratelimit-limit-tokens", str(NOMINAL_TOKENS_PER_MINUTE)),
            (
                "x-ratelimit-remaining-tokens",
                str(max(0, NOMINAL_TOKENS_PER_MINUTE - snap.tokens_last_minute)),
            ),
            ("x-ratelimit-reset-tokens", format_groq_duration(snap.tokens_reset_s)),
        ]
    if provider == "anthropic":
        headers = [("request-id", new_request_id())]
        if snap.requests_per_minute is not None:
            remaining = max(0, snap.requests_per_minute - snap.requests_in_window)
            headers += [
                ("anthropic-ratelimit-requests-limit", str(snap.requests_per_minute)),
                ("anthropic-ratelimit-requests-remaining", str(remaining)),
                ("anthropic-ratelimit-requests-reset-seconds", f"{snap.window_reset_s:.1f}"),
            ]
        return headers
    return []


# --- match keys ------------------------------------------------------------------------------------------


def message_text(content: Any) -> str:
    """Text of a chat message's content: a string, or a list of ``{"type": "text", "text": ...}`` parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(part.get("text", "")) for part in content if isinstance(part, dict) and "text" in part)
    return ""


def last_user_text(messages: Any) -> str:
    """Text of the last ``user`` message (where the company being scored appears)."""
    if not isinstance(messages, list):
        return ""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return message_text(message.get("content"))
    return ""


def match_key(route: Route, payload: Any, path: str) -> str:
    """What identifies the work of a request in the log, so a test can count the calls for one company."""
    if route.method == "GET" or (route.provider == "anthropic" and route.endpoint == "batches_cancel"):
        return path
    if not isinstance(payload, dict):
        return ""
    if route.provider == "parallel":
        value = payload.get("input", "")
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)
        return text[: MATCH_KEY_CHARS * 2]
    if route.endpoint == "batches_create":
        requests = payload.get("requests")
        ids = [str(r.get("custom_id")) for r in requests if isinstance(r, dict)] if isinstance(requests, list) else []
        return ",".join(ids)[:MATCH_KEY_CHARS]
    if route.endpoint in ("chat_completions", "messages"):
        return last_user_text(payload.get("messages"))[:MATCH_KEY_CHARS]
    texts = payload.get("text", payload.get("input"))
    if isinstance(texts, list):
        return " | ".join(str(t) for t in texts)[:MATCH_KEY_CHARS]
    return str(texts or "")[:MATCH_KEY_CHARS]
