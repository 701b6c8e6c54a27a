"""Anthropic Messages and Message Batches through the official SDK, unchanged, against the sandbox."""

from __future__ import annotations

import json
import time
from typing import Any

import anthropic
import httpx
import pytest

from sandbox.generate import LEVELS
from sandbox.server import SandboxServer

MODEL = "claude-sonnet-sandbox"


def _request(custom_id: str, prompt: str) -> dict[str, Any]:
    return {
        "custom_id": custom_id,
        "params": {"model": MODEL, "max_tokens": 200, "messages": [{"role": "user", "content": prompt}]},
    }


def _wait_ended(client: anthropic.Anthropic, batch_id: str, deadline_s: float = 5.0) -> Any:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        batch = client.messages.batches.retrieve(batch_id)
        if batch.processing_status == "ended":
            return batch
        time.sleep(0.02)  # polling the server's status with a deadline
    raise AssertionError("batch did not end in time")


def test_messages_create(claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(
        model=MODEL,
        max_tokens=300,
        system="You classify companies.",
        messages=[{"role": "user", "content": "Which level of AI adoption fits Acme BV?"}],
    )
    assert message.id.startswith("msg_") and message.type == "message" and message.role == "assistant"
    assert message.model == MODEL and message.stop_reason == "end_turn"
    text = message.content[0].text  # type: ignore[union-attr]
    assert json.loads(text)["level"] in LEVELS
    assert message.usage.input_tokens == 11 and message.usage.output_tokens > 0
    again = claude.messages.create(
        model=MODEL,
        max_tokens=300,
        system="You classify companies.",
        messages=[{"role": "user", "content": "Which level of AI adoption fits Acme BV?"}],
    )
    assert again.content[0].text == text  # type: ignore[union-attr]


def test_messages_max_tokens_truncates(claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(model=MODEL, max_tokens=3, messages=[{"role": "user", "content": "hi"}])
    assert message.stop_reason == "max_tokens" and message.usage.output_tokens == 3


def test_batch_lifecycle(sandbox: SandboxServer, claude: anthropic.Anthropic) -> None:
    sandbox.configure("anthropic", job_duration_s=0.2)
    requests = [_request(f"company-{i}", f"Classify the level of company {i}") for i in range(5)]
    batch = claude.messages.batches.create(requests=requests)  # type: ignore[arg-type]
    assert batch.id.startswith("msgbatch_") and batch.type == "message_batch"
    assert batch.processing_status == "in_progress" and batch.results_url is None
    assert batch.request_counts.processing == 5

    ended = _wait_ended(claude, batch.id)
    assert ended.request_counts.succeeded == 5 and ended.request_counts.processing == 0
    assert ended.results_url == f"{sandbox.url}/v1/messages/batches/{batch.id}/results"
    assert ended.ended_at is not None and ended.expires_at > ended.created_at

    results = list(claude.messages.batches.results(batch.id))
    assert sorted(r.custom_id for r in results) == [f"company-{i}" for i in range(5)]
    for result in results:
        assert result.result.type == "succeeded"
        assert json.loads(result.result.message.content[0].text)["level"] in LEVELS  # type: ignore[union-attr]


def test_batch_cancel(sandbox: SandboxServer, claude: anthropic.Anthropic) -> None:
    sandbox.configure("anthropic", job_duration_s=30)
    batch = claude.messages.batches.create(requests=[_request(f"c{i}", "hello") for i in range(3)])  # type: ignore[arg-type]
    canceling = claude.messages.batches.cancel(batch.id)
    assert canceling.processing_status == "canceling" and canceling.cancel_initiated_at is not None
    ended = _wait_ended(claude, batch.id)
    assert ended.request_counts.canceled == 3
    assert {r.result.type for r in claude.messages.batches.results(batch.id)} == {"canceled"}


@pytest.mark.parametrize(
    "requests",
    [
        [_request("bad id", "x")],
        [_request("x" * 65, "x")],
        [_request("dup", "x"), _request("dup", "y")],
        [{"custom_id": "ok", "params": {"model": MODEL, "messages": [{"role": "user", "content": "x"}]}}],
        [],
    ],
)
def test_batch_validation(claude: anthropic.Anthropic, requests: list[dict[str, Any]]) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        claude.messages.batches.create(requests=requests)  # type: ignore[arg-type]
    assert caught.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]


def test_unknown_batch_and_early_results(sandbox: SandboxServer, claude: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError):
        claude.messages.batches.retrieve("msgbatch_missing")
    sandbox.configure("anthropic", job_duration_s=30)
    batch = claude.messages.batches.create(requests=[_request("a", "x")])  # type: ignore[arg-type]
    with pytest.raises(anthropic.AnthropicError):
        claude.messages.batches.results(batch.id)  # no results_url yet


def test_headers_required(sandbox: SandboxServer) -> None:
    body = {"model": MODEL, "max_tokens": 10, "messages": [{"role": "user", "content": "x"}]}
    with httpx.Client(base_url=sandbox.url) as client:
        no_version = client.post("/v1/messages", json=body, headers={"x-api-key": "k"})
        assert no_version.status_code == 400
        assert no_version.json()["error"]["type"] == "invalid_request_error"
        no_key = client.post("/v1/messages", json=body, headers={"anthropic-version": "2023-06-01"})
        assert no_key.status_code == 401
        assert no_key.json()["error"]["type"] == "authentication_error"
        ok = client.post("/v1/messages", json=body, headers={"x-api-key": "k", "anthropic-version": "2023-06-01"})
        assert ok.status_code == 200 and ok.headers["request-id"].startswith("req_")
