"""Serving the sandbox app with uvicorn: a protocol that can drop connections and a server that stops quickly.

Used by both the CLI (``python -m sandbox``) and :class:`sandbox.server.SandboxServer`.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Mapping
from typing import Any, cast

import uvicorn
from uvicorn._types import ASGI3Application, ASGIReceiveCallable, ASGISendCallable, Scope
from uvicorn.protocols.http.h11_impl import H11Protocol

from sandbox.gateway import TRANSPORT_EXTENSION
from sandbox.state import SandboxState

GRACEFUL_SHUTDOWN_S = 2


class SandboxH11Protocol(H11Protocol):
    """uvicorn's h11 protocol that also hands each request its connection's transport (scope extension).

    ASGI has no way to close a connection without answering; the ``drop`` fault needs exactly that, and
    closing the transport is the only way to produce it without uvicorn logging an application error.
    """

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        inner = self.app

        async def app_with_transport(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
            extensions: dict[str, Any] = dict(cast(Mapping[str, Any], scope.get("extensions") or {}))
            extensions[TRANSPORT_EXTENSION] = transport
            scope["extensions"] = extensions  # type: ignore[typeddict-unknown-key]
            await inner(scope, receive, send)

        self.app = app_with_transport


class SandboxUvicorn(uvicorn.Server):
    """A uvicorn server that first wakes held responses and blocking waits, so shutdown is quick."""

    def __init__(self, config: uvicorn.Config, state: SandboxState) -> None:
        super().__init__(config)
        self.sandbox_state = state

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self.sandbox_state.bind_loop()
        await super().startup(sockets=sockets)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.sandbox_state.begin_shutdown()
        await super().shutdown(sockets=sockets)


def uvicorn_config(
    app: ASGI3Application | Any, *, host: str, port: int, log_level: str, configure_logging: bool = True
) -> uvicorn.Config:
    """uvicorn settings for the sandbox; ``configure_logging=False`` leaves the host's logging alone."""
    extra: dict[str, Any] = {} if configure_logging else {"log_config": None}
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=SandboxH11Protocol,
        lifespan="off",
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        **extra,
    )
