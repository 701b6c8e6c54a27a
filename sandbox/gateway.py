"""The gateway: an ASGI middleware that makes every provider endpoint behave like the real service.

For each provider request it checks credentials, enforces the limits (429 + ``retry-after``), adds latency,
injects faults, adds the provider's headers and ``x-sandbox: true``, and records what happened, including the
list price of an answered call (the handler prices it, the gateway bills it only once a 2xx answer was sent:
what a 429, a 5xx, a dropped connection or a held answer the client gave up on never cost). The handlers
behind it only produce the happy-path payloads (and act on the output-level faults handed to them in the
scope).

Responses are buffered, which lets the gateway truncate a body (``malformed_json``) or hold it back
(``timeout``) after the handler has done its work, exactly as a slow or broken provider would.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sandbox.config import FaultRule
from sandbox.faults import TRANSPORT_FAULTS
from sandbox.limits import format_retry_after
from sandbox.prices import Charge
from sandbox.providers import (
    Route,
    auth_error,
    classify,
    error_body,
    match_key,
    rate_headers,
    rate_limit_message,
)
from sandbox.state import SandboxState
from sandbox.stats import LogEntry

# Scope keys shared with the handlers and the server protocol.
FAULT_KEY = "sandbox.fault"  # the output-level fault kind a handler must apply
RUN_RESERVATION_KEY = "sandbox.run_reserved"  # True while a Parallel run slot is reserved for this request
TOKENS_KEY = "sandbox.tokens"  # tokens a handler served (feeds GROQ's token headers)
CHARGE_KEY = "sandbox.charge"  # the Charge of a call a handler answered, billed if the 2xx answer is delivered
TRANSPORT_EXTENSION = "sandbox.transport"  # the connection's asyncio transport, set by SandboxH11Protocol

SANDBOX_HEADER = (b"x-sandbox", b"true")


class DroppedConnection(ConnectionAbortedError):
    """Raised mid-response to make a server without transport access close the connection."""


@dataclass
class Reply:
    """A complete HTTP response, buffered."""

    status: int
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""

    @classmethod
    def json(cls, status: int, payload: Any) -> Reply:
        body = json.dumps(payload).encode()
        return cls(status, [(b"content-type", b"application/json")], body)

    def with_headers(self, extra: list[tuple[str, str]]) -> Reply:
        kept = [(k, v) for k, v in self.headers if k.lower() != b"content-length"]
        added = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in extra]
        length = [(b"content-length", str(len(self.body)).encode())]
        return Reply(self.status, kept + added + [SANDBOX_HEADER] + length, self.body)

    def truncated(self) -> Reply:
        """The same response as a 200 with its body cut in half: JSON that cannot be parsed."""
        return Reply(200, self.headers, self.body[: len(self.body) // 2] or b'{"')

    async def send(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status, "headers": self.headers})
        await send({"type": "http.response.body", "body": self.body, "more_body": False})


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _wait_disconnect(receive: Receive) -> None:
    """Return when the client goes away (the request body has already been read)."""
    while (await receive())["type"] != "http.disconnect":
        pass


def _with_sandbox_header(send: Send) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), SANDBOX_HEADER]}
        await send(message)

    return wrapped


@dataclass
class _Request:
    """What the gateway knows about a provider request."""

    route: Route
    scope: Scope
    body: bytes
    payload: Any
    match_text: str
    match_key: str
    arrived_mono: float = field(default_factory=time.monotonic)
    arrived_wall: float = field(default_factory=time.time)


def _parse(route: Route, scope: Scope, body: bytes) -> _Request:
    text = body.decode("utf-8", errors="replace")
    try:
        payload: Any = json.loads(body) if body else None
    except ValueError:
        payload = None
    # `match` rules see the raw body and its unescaped form (clients may send non-ASCII names as \u escapes);
    # bodiless requests are matched on their path.
    canonical = json.dumps(payload, ensure_ascii=False) if payload is not None else ""
    match_text = f"{text}\n{canonical}" if body else scope["path"]
    return _Request(route, scope, body, payload, match_text, match_key(route, payload, scope["path"]))


class Gateway:
    """Pure ASGI middleware in front of the FastAPI routes (see the module docstring)."""

    def __init__(self, app: ASGIApp, state: SandboxState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = classify(scope["method"], scope["path"]) if scope["type"] == "http" else None
        if route is None:
            sender = _with_sandbox_header(send) if scope["type"] == "http" else send
            await self.app(scope, receive, sender)
            return
        request = _parse(route, scope, await _read_body(receive))
        await self._serve(request, receive, send)

    async def _serve(self, request: _Request, receive: Receive, send: Send) -> None:
        state = self.state
        route = request.route
        state.stats.received(route.provider, route.endpoint)
        latency_s = state.config.section(route.provider).latency_ms / 1000

        denied = auth_error(route.provider, Headers(scope=request.scope))
        if denied is not None:
            status, kind, message = denied
            state.stats.rejected(route.provider, route.endpoint)
            await state.sleep(latency_s)
            await self._finish(request, send, Reply.json(status, error_body(route.provider, status, kind, message)))
            return

        rejection = state.admit(route, request.arrived_mono)
        if rejection is not None:
            state.stats.rate_limited(route.provider, route.endpoint)
            message = rate_limit_message(route.provider, rejection.reason, rejection.limit, rejection.retry_after)
            reply = Reply.json(429, error_body(route.provider, 429, "rate_limit", message))
            reply.headers.append((b"retry-after", format_retry_after(rejection.retry_after).encode()))
            await state.sleep(latency_s)
            await self._finish(request, send, reply)
            return

        if route.concurrency == "active_runs":
            request.scope[RUN_RESERVATION_KEY] = True
        try:
            await state.sleep(latency_s)
            await self._admitted(request, receive, send)
        finally:
            if request.scope.pop(RUN_RESERVATION_KEY, False):
                state.release_run_reservation()
            state.release(route)

    async def _admitted(self, request: _Request, receive: Receive, send: Send) -> None:
        state = self.state
        route = request.route
        outage = state.outages.status_at(route.provider, request.arrived_wall)
        if outage is not None:
            state.stats.fault(route.provider, route.endpoint, "outage")
            message = f"Sandbox outage: the provider is down ({outage})"
            await self._finish(
                request, send, Reply.json(outage, error_body(route.provider, outage, "server", message)), fault="outage"
            )
            return
        fault = state.faults.pick(
            route.provider, route.endpoint, request.match_text, TRANSPORT_FAULTS | route.item_faults
        )
        if fault is not None:
            state.stats.fault(route.provider, route.endpoint, fault.kind)
        kind = fault.kind if fault is not None else None

        if kind == "drop":
            self._log(request, 0, kind, delivered=False)
            await self._drop(request.scope, receive, send)
            return
        if kind == "5xx":
            assert fault is not None
            reply = Reply.json(fault.status, error_body(route.provider, fault.status, "server", _server_message(fault)))
            await self._finish(request, send, reply, fault=kind)
            return

        if kind is not None and kind not in TRANSPORT_FAULTS:
            request.scope[FAULT_KEY] = kind
        reply = await self._call_handler(request, receive)
        # A handler that created a run has taken the reservation; otherwise give the slot back now, not after
        # a held (`timeout`) response.
        if request.scope.pop(RUN_RESERVATION_KEY, False):
            state.release_run_reservation()
        tokens = request.scope.get(TOKENS_KEY)
        if isinstance(tokens, int):
            state.limiters[route.provider].tokens.add(time.monotonic(), tokens)
        charge = request.scope.pop(CHARGE_KEY, None)
        if not isinstance(charge, Charge) or not 200 <= reply.status < 300:
            charge = None
        if kind == "malformed_json":
            reply = reply.truncated()  # still billed: the provider answered 200, the bytes broke on the way
        delivered = True
        if kind == "timeout":
            delivered = await self._hold(receive, state.config.section(route.provider).timeout_s)
        if delivered:
            await self._finish(request, send, reply, fault=kind)
            if charge is not None:
                state.stats.bill(route.provider, route.endpoint, charge)
        else:
            self._log(request, reply.status, kind, delivered=False)

    async def _call_handler(self, request: _Request, receive: Receive) -> Reply:
        """Run the FastAPI app on the already-read body and buffer its response."""
        body_sent = False
        reply = Reply(500)
        chunks: list[bytes] = []

        async def replay() -> Message:
            nonlocal body_sent
            if not body_sent:
                body_sent = True
                return {"type": "http.request", "body": request.body, "more_body": False}
            return await receive()

        async def collect(message: Message) -> None:
            if message["type"] == "http.response.start":
                reply.status = message["status"]
                reply.headers = list(message.get("headers", []))
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(request.scope, replay, collect)
        reply.body = b"".join(chunks)
        return reply

    async def _hold(self, receive: Receive, seconds: float) -> bool:
        """Hold a response for ``seconds``; False when the client gave up first (the answer is then lost)."""
        sleeper = asyncio.ensure_future(self.state.sleep(seconds))
        listener = asyncio.ensure_future(_wait_disconnect(receive))
        done, pending = await asyncio.wait({sleeper, listener}, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        return listener not in done

    async def _drop(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Close the connection without any response (clients see a protocol or read error)."""
        transport = (scope.get("extensions") or {}).get(TRANSPORT_EXTENSION)
        if transport is not None:
            transport.close()
            await _wait_disconnect(receive)  # lets the server notice, so it does not answer 500 itself
            return
        # Without the transport (another ASGI server): start a response and abort it mid-body.
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"1000")]})
        await send({"type": "http.response.body", "body": b'{"', "more_body": True})
        raise DroppedConnection("sandbox fault: connection dropped")

    async def _finish(self, request: _Request, send: Send, reply: Reply, fault: str | None = None) -> None:
        provider = request.route.provider
        extra = rate_headers(provider, self.state.rate_snapshot(provider, time.monotonic()))
        await reply.with_headers(extra).send(send)
        self._log(request, reply.status, fault, delivered=True)

    def _log(self, request: _Request, status: int, fault: str | None, *, delivered: bool) -> None:
        self.state.stats.record(
            LogEntry(
                provider=request.route.provider,
                endpoint=request.route.endpoint,
                method=request.scope["method"],
                path=request.scope["path"],
                time=request.arrived_wall,
                duration_ms=round((time.monotonic() - request.arrived_mono) * 1000, 3),
                status=status,
                match_key=request.match_key,
                fault=fault,
                delivered=delivered,
            )
        )


def _server_message(fault: FaultRule) -> str:
    return f"Sandbox injected server error ({fault.status})"
