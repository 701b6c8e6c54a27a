"""The in-process sandbox for tests, benchmarks and the demo.

``SandboxServer`` starts uvicorn in a background thread on a socket it binds itself, so port 0 yields a free
port that is known before the server starts, and ``.url`` is always the real address.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any

import httpx

from sandbox.app import app_state, create_app
from sandbox.config import SandboxConfig, as_config
from sandbox.serving import GRACEFUL_SHUTDOWN_S, SandboxUvicorn, uvicorn_config

POLL_INTERVAL_S = 0.01


class SandboxServer:
    """The sandbox in a background thread, for tests, benchmarks and the demo.

    >>> with SandboxServer(config={"groq": {"requests_per_minute": 30}}) as sandbox:
    ...     httpx.post(f"{sandbox.url}/openai/v1/chat/completions", ...)
    ...     sandbox.stats()["providers"]["groq"]["peak_window_60s"]
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        config: SandboxConfig | Mapping[str, Any] | None = None,
        *,
        log_level: str = "warning",
        startup_timeout_s: float = 10.0,
    ) -> None:
        self.host = host
        self.requested_port = port
        self.config = as_config(config)
        self.log_level = log_level
        self.startup_timeout_s = startup_timeout_s
        self.app = create_app(self.config)
        self._port: int | None = None
        self._server: SandboxUvicorn | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self._client: httpx.Client | None = None

    # --- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> SandboxServer:
        if self._thread is not None:
            raise RuntimeError("SandboxServer already started")
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        # proto must be IPPROTO_TCP (not 0): asyncio only sets TCP_NODELAY on such sockets, and without it
        # every response (headers and body are two writes) waits ~40 ms for the client's delayed ACK.
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.requested_port))
        self._socket = sock
        self._port = sock.getsockname()[1]
        config = uvicorn_config(
            self.app, host=self.host, port=self._port, log_level=self.log_level, configure_logging=False
        )
        server = SandboxUvicorn(config, app_state(self.app))
        self._server = server
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name=f"sandbox-{self._port}", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + self.startup_timeout_s
        while not server.started:
            if not self._thread.is_alive():
                self._cleanup()
                raise RuntimeError("sandbox server failed to start (see the uvicorn log)")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"sandbox server did not start within {self.startup_timeout_s}s")
            time.sleep(POLL_INTERVAL_S)
        self._client = httpx.Client(base_url=self.url, timeout=10.0)
        self._client.get("/_sandbox/health").raise_for_status()
        return self

    def stop(self) -> None:
        """Stop the server and wait for its thread (held responses are woken, so this is quick)."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=GRACEFUL_SHUTDOWN_S + 10)
        self._cleanup()

    def _cleanup(self) -> None:
        if self._client is not None:
            self._client.close()
        if self._socket is not None:
            self._socket.close()
        self._client = None
        self._socket = None
        self._thread = None
        self._server = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- access ----------------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("SandboxServer is not started")
        return self._port

    @property
    def url(self) -> str:
        """Base URL without a trailing slash, e.g. ``http://127.0.0.1:43121``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            raise RuntimeError("SandboxServer is not started")
        return self._client

    def stats(self, *, log: bool = True, provider: str | None = None, contains: str | None = None) -> dict[str, Any]:
        """``GET /_sandbox/stats``: counters per provider/endpoint and (optionally filtered) the request
        log."""
        params: dict[str, str] = {"log": "true" if log else "false"}
        if provider is not None:
            params["provider"] = provider
        if contains is not None:
            params["contains"] = contains
        response = self.client.get("/_sandbox/stats", params=params)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def requests(self, provider: str | None = None, contains: str | None = None) -> list[dict[str, Any]]:
        """The logged requests of ``provider`` whose match_key contains ``contains`` (e.g. a company)."""
        log: list[dict[str, Any]] = self.stats(provider=provider, contains=contains)["log"]
        return log

    def configure(self, provider: str, **settings: Any) -> dict[str, Any]:
        """Partially update one provider (``faults`` replaces the rule list); returns the whole config."""
        body = json.loads(json.dumps({provider: settings}, default=_jsonable))
        response = self.client.post("/_sandbox/config", json=body)
        if response.status_code == 422:
            raise ValueError(response.json()["detail"])
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def get_config(self) -> dict[str, Any]:
        result: dict[str, Any] = self.client.get("/_sandbox/config").raise_for_status().json()
        return result

    def outage(self, provider: str, seconds: float, status: int = 503) -> dict[str, Any]:
        """Make ``provider`` answer ``status`` to every request for ``seconds`` from now (``sandbox.outages``);
        returns the window: provider, start and end (epoch seconds), status."""
        body = {"provider": provider, "seconds": seconds, "status": status}
        result: dict[str, Any] = self.client.post("/_sandbox/outage", json=body).raise_for_status().json()
        return result

    def reset(self, *, config: bool = False) -> None:
        """Clear stats, jobs, windows and fault counters; ``config=True`` restores the start configuration."""
        self.client.post("/_sandbox/reset", json={"config": config}).raise_for_status()


def _jsonable(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump()
    raise TypeError(f"cannot send {type(value).__name__} to the sandbox")
