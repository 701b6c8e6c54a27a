"""Every provider endpoint over real HTTP: wire shapes, determinism, authentication, sandbox marking."""

from __future__ import annotations

import json
import math
import re

import httpx
import pytest

from sandbox.generate import LEVELS
from sandbox.server import SandboxServer

from .conftest import Driver


def test_groq_level_reply_shape_and_headers(driver: Driver) -> None:
    response = driver.chat("Rate the AI adoption level of Acme BV. Answer with JSON {level, reasoning}.")
    assert response.status_code == 200
    assert response.headers["x-sandbox"] == "true"
    for header in (
        "limit-requests",
        "remaining-requests",
        "reset-requests",
        "limit-tokens",
        "remaining-tokens",
    ):
        assert f"x-ratelimit-{header}" in response.headers
    assert re.fullmatch(r"(\d+h)?(\d+m)?[\d.]+s", response.headers["x-ratelimit-reset-requests"])
    assert "retry-after" not in response.headers
    body = response.json()
    assert body["object"] == "chat.completion" and body["model"] == "openai/gpt-oss-120b"
    message = body["choices"][0]["message"]
    assert message["role"] == "assistant" and body["choices"][0]["finish_reason"] == "stop"
    verdict = json.loads(message["content"])
    assert verdict["level"] in LEVELS and "Sandbox" in verdict["reasoning"]
    usage = body["usage"]
    assert usage["prompt_tokens"] == 13  # approximate tokens = words
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 13


def test_chat_is_deterministic_and_both_paths_work(driver: Driver) -> None:
    first = driver.chat("What level of automation does Acme have?").json()["choices"][0]["message"]["content"]
    again = driver.chat("What level of automation does Acme have?").json()["choices"][0]["message"]["content"]
    openai = driver.chat("What level of automation does Acme have?", path="/v1/chat/completions")
    assert first == again == openai.json()["choices"][0]["message"]["content"]
    plain = driver.chat("Say hello").json()["choices"][0]["message"]["content"]
    assert plain.startswith("Sandbox reply") and not plain.startswith("{")


def test_chat_rejects_bad_requests(driver: Driver) -> None:
    no_key = driver.http.post("/openai/v1/chat/completions", json={"model": "m", "messages": []})
    assert no_key.status_code == 401
    assert no_key.json()["error"]["code"] == "invalid_api_key"
    assert no_key.headers["x-sandbox"] == "true"
    bad = driver.http.post("/openai/v1/chat/completions", json={"model": "m"}, headers={"Authorization": "Bearer k"})
    assert bad.status_code == 400 and bad.json()["error"]["type"] == "invalid_request_error"


def test_parallel_run_lifecycle(sandbox: SandboxServer, driver: Driver) -> None:
    sandbox.configure("parallel", job_duration_s=0.2)
    created = driver.create_run({"name": "Acme BV", "website": "https://www.acme.nl"})
    assert created.status_code == 202
    run = created.json()
    assert run["run_id"].startswith("trun_") and run["status"] == "queued" and run["is_active"] is True
    assert run["processor"] == "base" and run["created_at"].endswith("Z")

    result = driver.run_result(run["run_id"], timeout=5)  # blocks until the run ends
    assert result.status_code == 200
    body = result.json()
    assert body["run"]["status"] == "completed" and body["run"]["is_active"] is False
    output = body["output"]
    assert output["type"] == "json"
    content = output["content"]
    assert content["products"] == ["Sandbox products 1 for Acme BV", "Sandbox products 2 for Acme BV"]
    assert content["ownership_type"] == "private"
    assert content["activity_description"] == "Sandbox activity description for Acme BV"
    assert content["contacts"][0]["email"] == "sandbox@acme.nl"
    assert 1 <= content["employee_count"] <= 500
    assert {b["field"] for b in output["basis"]} == set(content)
    citation = output["basis"][0]["citations"][0]
    assert citation["url"] == "https://acme.nl/" and citation["excerpts"]

    status = driver.run_status(run["run_id"]).json()
    assert status["status"] == "completed" and status["error"] is None
    # The same input always yields the same content.
    again = driver.create_run({"name": "Acme BV", "website": "https://www.acme.nl"}).json()
    assert driver.run_result(again["run_id"]).json()["output"]["content"] == content


def test_parallel_status_moves_from_queued_to_running(sandbox: SandboxServer, driver: Driver) -> None:
    sandbox.configure("parallel", job_duration_s=30)
    run_id = driver.create_run("https://globex.com").json()["run_id"]
    statuses = set()
    for _ in range(3):
        statuses.add(driver.run_status(run_id).json()["status"])
    assert statuses <= {"queued", "running"}
    timed_out = driver.run_result(run_id, timeout=0.2)
    assert timed_out.status_code == 408
    error = timed_out.json()
    assert error["type"] == "error" and set(error["error"]) == {"message", "ref_id", "detail"}


def test_parallel_text_output_and_errors(sandbox: SandboxServer, driver: Driver) -> None:
    sandbox.configure("parallel", job_duration_s=0)
    run_id = driver.create_run("Initech, https://initech.com", schema=None).json()["run_id"]
    output = driver.run_result(run_id).json()["output"]
    assert output["type"] == "text" and "Sandbox" in output["content"] and "initech.com" in output["content"]
    assert driver.http.post("/v1/tasks/runs", json={"input": "x"}).status_code == 401
    missing = driver.run_status("trun_missing")
    assert missing.status_code == 404 and missing.json()["error"]["ref_id"].startswith("ref_")
    too_long = driver.http.post(
        "/v1/tasks/runs",
        json={"input": "x", "metadata": {"a_key_that_is_too_long": "v"}},
        headers={"x-api-key": "k"},
    )
    assert too_long.status_code == 422


def _cosine(u: list[float], v: list[float]) -> float:
    return sum(x * y for x, y in zip(u, v, strict=True))


def test_workers_ai_embeddings(driver: Driver) -> None:
    texts = ["Company: Acme. Industry: robotics.", "Company: Acme. Industry: robots.", "Weather is lovely"]
    response = driver.workers_embed(texts, pooling="cls")
    assert response.status_code == 200 and response.headers["x-sandbox"] == "true"
    body = response.json()
    assert body["success"] is True and body["errors"] == [] and body["messages"] == []
    result = body["result"]
    assert result["shape"] == [3, 384] and result["pooling"] == "cls"
    a, b, c = result["data"]
    assert all(math.isclose(_cosine(v, v), 1.0, rel_tol=1e-9) for v in (a, b, c))
    assert _cosine(a, b) > _cosine(a, c)
    assert driver.workers_embed(texts[0], pooling="cls").json()["result"]["data"] == [a]
    assert driver.workers_embed(texts[0], pooling="mean").json()["result"]["data"] != [a]

    too_many = driver.workers_embed(["x"] * 101)
    assert too_many.status_code == 400 and too_many.json()["success"] is False
    assert driver.workers_embed("x", pooling="max").status_code == 400


def test_openai_embeddings_match_workers_mean(driver: Driver) -> None:
    response = driver.openai_embed(["Acme robotics", "Globex"])
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "list" and body["model"] == "text-embedding-sandbox"
    assert [d["index"] for d in body["data"]] == [0, 1] and body["data"][0]["object"] == "embedding"
    assert body["usage"] == {"prompt_tokens": 3, "total_tokens": 3}
    mean = driver.workers_embed("Acme robotics", pooling="mean").json()["result"]["data"][0]
    assert body["data"][0]["embedding"] == mean


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/v1/tasks/runs", {"type", "error"}),
        ("/openai/v1/chat/completions", {"error"}),
        ("/v1/messages", {"type", "error", "request_id"}),
        (
            "/client/v4/accounts/a/ai/run/@cf/baai/bge-small-en-v1.5",
            {"result", "success", "errors", "messages"},
        ),
        ("/v1/embeddings", {"error"}),
    ],
)
def test_missing_credentials_get_the_providers_401(driver: Driver, path: str, expected: set[str]) -> None:
    response = driver.http.post(path, json={}, headers={"anthropic-version": "2023-06-01"})
    assert response.status_code == 401
    assert set(response.json()) == expected
    assert response.headers["x-sandbox"] == "true"


def test_unknown_paths_are_marked_too(driver: Driver) -> None:
    response = driver.http.get("/v2/nothing")
    assert response.status_code == 404 and response.headers["x-sandbox"] == "true"


def test_http_client_errors_are_plain_http(sandbox: SandboxServer) -> None:
    with httpx.Client(base_url=sandbox.url) as client:
        assert client.get("/_sandbox/health").json() == {"status": "ok"}
