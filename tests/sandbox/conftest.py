"""Fixtures for the sandbox tests: one real server for the session, reset before every test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest

from sandbox.server import SandboxServer

GROQ_MODEL = "openai/gpt-oss-120b"
COMPANY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "products": {"type": "array", "items": {"type": "string"}},
        "ownership_type": {"type": "string", "enum": ["private", "public", "family"]},
        "activity_description": {"type": "string"},
        "contacts": {"type": "array", "items": {"$ref": "#/$defs/Contact"}},
        "employee_count": {"anyOf": [{"type": "integer", "minimum": 1, "maximum": 500}, {"type": "null"}]},
    },
    "required": ["products", "ownership_type", "activity_description"],
    "$defs": {
        "Contact": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "email": {"type": "string", "format": "email"}},
        }
    },
}


class Driver:
    """Plain httpx calls in each provider's wire format, as the project's clients make them."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx.Client(base_url=url, timeout=10.0)

    def close(self) -> None:
        self.http.close()

    def chat(self, content: str, *, path: str = "/openai/v1/chat/completions", **kwargs: Any) -> httpx.Response:
        body = {"model": GROQ_MODEL, "messages": [{"role": "user", "content": content}], "temperature": 0.1}
        return self.http.post(path, json=body, headers={"Authorization": "Bearer gsk_test"}, **kwargs)

    def create_run(
        self, task_input: Any, schema: dict[str, Any] | None = COMPANY_SCHEMA, **kwargs: Any
    ) -> httpx.Response:
        body: dict[str, Any] = {"processor": "base", "input": task_input}
        if schema is not None:
            body["task_spec"] = {"output_schema": {"type": "json", "json_schema": schema}}
        return self.http.post("/v1/tasks/runs", json=body, headers={"x-api-key": "par_test"}, **kwargs)

    def run_status(self, run_id: str) -> httpx.Response:
        return self.http.get(f"/v1/tasks/runs/{run_id}", headers={"x-api-key": "par_test"})

    def run_result(self, run_id: str, timeout: float = 5.0) -> httpx.Response:
        return self.http.get(
            f"/v1/tasks/runs/{run_id}/result", params={"timeout": timeout}, headers={"x-api-key": "par_test"}
        )

    def workers_embed(self, text: str | list[str], pooling: str = "cls") -> httpx.Response:
        return self.http.post(
            "/client/v4/accounts/acc123/ai/run/@cf/baai/bge-small-en-v1.5",
            json={"text": text, "pooling": pooling},
            headers={"Authorization": "Bearer cf_test"},
        )

    def openai_embed(self, text: str | list[str]) -> httpx.Response:
        return self.http.post(
            "/v1/embeddings",
            json={"model": "text-embedding-sandbox", "input": text},
            headers={"Authorization": "Bearer sk_test"},
        )


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[SandboxServer]:
    with SandboxServer(port=0) as server:
        yield server


@pytest.fixture
def sandbox(sandbox_server: SandboxServer) -> SandboxServer:
    """The session's server with fresh stats, jobs and the start configuration."""
    sandbox_server.reset(config=True)
    return sandbox_server


@pytest.fixture
def driver(sandbox: SandboxServer) -> Iterator[Driver]:
    client = Driver(sandbox.url)
    yield client
    client.close()


@pytest.fixture
def claude(sandbox: SandboxServer) -> Iterator[anthropic.Anthropic]:
    """The official SDK pointed at the sandbox; retries off so every fault is visible."""
    client = anthropic.Anthropic(base_url=sandbox.url, api_key="test", max_retries=0)
    yield client
    client.close()
