"""Admin endpoints, stats accounting, reset, the in-process server helper and the CLI."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from sandbox.__main__ import build_config
from sandbox.__main__ import main as cli_main
from sandbox.server import SandboxServer

from .conftest import Driver

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_config_roundtrip_and_validation(sandbox: SandboxServer) -> None:
    config = sandbox.configure("groq", requests_per_minute=30, latency_ms=5)
    assert config["groq"]["requests_per_minute"] == 30 and config["groq"]["latency_ms"] == 5
    assert sandbox.get_config()["groq"]["requests_per_minute"] == 30
    assert sandbox.get_config()["parallel"]["requests_per_minute"] is None
    with pytest.raises(ValueError, match="requests_per_min"):
        sandbox.configure("groq", requests_per_min=30)
    with pytest.raises(ValueError, match="unknown provider"):
        sandbox.configure("mistral", latency_ms=1)
    response = sandbox.client.post("/_sandbox/config", json={"groq": {"max_concurrency": 0}})
    assert response.status_code == 422
    assert sandbox.get_config()["groq"]["max_concurrency"] is None  # a rejected update changes nothing


def test_stats_count_and_log(sandbox: SandboxServer, driver: Driver) -> None:
    sandbox.configure("groq", requests_per_minute=3)
    for company in ("Acme", "Globex", "Acme", "Initech"):
        driver.chat(f"Score the level of {company}")
    driver.http.post("/openai/v1/chat/completions", json={})  # no key
    stats = sandbox.stats()
    groq = stats["providers"]["groq"]
    assert groq["received"] == 5 and groq["accepted"] == 3 and groq["rate_limited"] == 1 and groq["rejected"] == 1
    assert groq["peak_window_60s"] == 3 and groq["peak_concurrency"] == 1
    assert stats["providers"]["parallel"]["received"] == 0
    assert [e["status"] for e in stats["log"]] == [200, 200, 200, 429, 401]
    entry = stats["log"][0]
    assert entry["provider"] == "groq" and entry["endpoint"] == "chat_completions" and entry["method"] == "POST"
    assert entry["match_key"] == "Score the level of Acme" and entry["time"] <= time.time()
    acme = sandbox.requests(provider="groq", contains="Acme")
    assert [e["status"] for e in acme] == [200, 200]
    assert "log" not in sandbox.stats(log=False)


def test_parallel_match_key_is_the_input(sandbox: SandboxServer, driver: Driver) -> None:
    driver.create_run({"name": "Acme", "website": "https://acme.example"})
    (entry,) = sandbox.requests(provider="parallel")
    assert json.loads(entry["match_key"]) == {"name": "Acme", "website": "https://acme.example"}


def test_reset(sandbox: SandboxServer, driver: Driver) -> None:
    sandbox.configure("parallel", job_duration_s=30, faults=[{"kind": "5xx", "times": 1, "endpoint": "create_run"}])
    assert driver.create_run("x").status_code == 500
    run_id = driver.create_run("x").json()["run_id"]
    sandbox.reset()
    stats = sandbox.stats()
    assert stats["log"] == [] and stats["providers"]["parallel"]["received"] == 0
    assert stats["providers"]["parallel"]["fault_rules_fired"] == [0]
    assert driver.run_status(run_id).status_code == 404  # runs are gone
    assert sandbox.get_config()["parallel"]["job_duration_s"] == 30  # config kept
    assert driver.create_run("x").status_code == 500  # the rule fires again: counters restarted
    sandbox.reset(config=True)
    assert sandbox.get_config()["parallel"]["faults"] == []
    assert sandbox.get_config()["parallel"]["job_duration_s"] == 1.0


def test_server_ports_and_clean_stop() -> None:
    with SandboxServer(config={"groq": {"timeout_s": 60, "faults": [{"kind": "timeout"}]}}) as server:
        assert server.port > 0 and server.url == f"http://127.0.0.1:{server.port}"
        port = server.port
        outcome: list[object] = []

        def held_request() -> None:
            try:
                outcome.append(
                    httpx.post(
                        f"{server.url}/openai/v1/chat/completions",
                        json={"model": "m", "messages": [{"role": "user", "content": "x"}]},
                        headers={"Authorization": "Bearer k"},
                        timeout=30,
                    ).status_code
                )
            except httpx.HTTPError as exc:
                outcome.append(exc)

        thread = threading.Thread(target=held_request)
        thread.start()
        deadline = time.monotonic() + 5
        while server.stats(log=False)["providers"]["groq"]["in_flight"] == 0:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        started = time.monotonic()
    assert time.monotonic() - started < 3  # the held response (60 s) does not stall shutdown
    thread.join(timeout=5)
    assert outcome  # answered (or closed) at shutdown instead of hanging
    with SandboxServer(port=port) as again:  # the port was released
        assert again.url.endswith(f":{port}")


def test_server_restarts_with_its_state() -> None:
    """A stopped server starts again on a new event loop (latency waits use a loop-bound event)."""
    server = SandboxServer(config={"groq": {"latency_ms": 1}})
    for expected in (1, 2):
        with server:
            driver = Driver(server.url)
            assert driver.chat("hello").status_code == 200
            driver.close()
            assert server.stats(log=False)["providers"]["groq"]["accepted"] == expected


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_cli_starts_with_config_file(tmp_path: Path) -> None:
    config_file = tmp_path / "sandbox.json"
    config_file.write_text(json.dumps({"parallel": {"job_duration_s": 0.5}, "groq": {"requests_per_minute": 30}}))
    port = _free_port()
    command = [sys.executable, "-m", "sandbox", "--port", str(port), "--config", str(config_file)]
    command += ["--set", "groq.latency_ms=2", "--log-level", "warning"]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                config = httpx.get(f"http://127.0.0.1:{port}/_sandbox/config", timeout=1).json()
                break
            except httpx.TransportError:
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                assert time.monotonic() < deadline, "CLI sandbox did not start"
                time.sleep(0.05)
        assert config["parallel"]["job_duration_s"] == 0.5
        assert config["groq"]["requests_per_minute"] == 30 and config["groq"]["latency_ms"] == 2
    finally:
        process.terminate()
        process.communicate(timeout=10)
    # uvicorn shuts down gracefully on SIGTERM, then re-raises the signal so the exit status tells the caller.
    assert process.returncode in (0, -signal.SIGTERM)


def test_cli_rejects_bad_settings(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli_main(["--set", "groq.requests_per_min=3"])
    assert exited.value.code == 2 and "requests_per_min" in capsys.readouterr().err


def test_cli_settings_parse_json_values(tmp_path: Path) -> None:
    config_file = tmp_path / "sandbox.json"
    config_file.write_text(json.dumps({"groq": {"requests_per_minute": 30}}))
    faults = '[{"kind": "5xx", "match": "acme"}]'
    config = build_config(str(config_file), ["groq.latency_ms=2.5", f"parallel.faults={faults}"])
    assert config.groq.requests_per_minute == 30 and config.groq.latency_ms == 2.5
    assert config.parallel.faults[0].match == "acme"
