"""Message Batches as a reclassify action meets them: listing and paging, and expired/canceled item results."""

from __future__ import annotations

import json
import time
from typing import Any

import anthropic
import httpx
import pytest

from sandbox.server import SandboxServer

from .test_billing import bill, billed

MODEL = "claude-haiku-4-5"
HEADERS = {"x-api-key": "k", "anthropic-version": "2023-06-01"}


def _request(custom_id: str, prompt: str = "hello") -> dict[str, Any]:
    return {
        "custom_id": custom_id,
        "params": {"model": MODEL, "max_tokens": 50, "messages": [{"role": "user", "content": prompt}]},
    }


def _create(claude: anthropic.Anthropic, count: int) -> list[str]:
    """``count`` one-item batches, oldest first."""
    return [claude.messages.batches.create(requests=[_request(f"b{i}")]).id for i in range(count)]  # type: ignore[arg-type]


def _wait_ended(claude: anthropic.Anthropic, batch_id: str) -> Any:
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        batch = claude.messages.batches.retrieve(batch_id)
        if batch.processing_status == "ended":
            return batch
        time.sleep(0.02)  # polling the server's status with a deadline
    raise AssertionError("batch did not end in time")


# --- listing ---------------------------------------------------------------------------------------------


def test_list_auto_paginates_newest_first(sandbox: SandboxServer, claude: anthropic.Anthropic) -> None:
    ids = _create(claude, 25)
    first = claude.messages.batches.list()
    assert [b.id for b in first.data] == ids[::-1][:20]  # default limit 20, newest first
    assert first.has_more is True and first.first_id == ids[-1] and first.last_id == ids[5]
    assert [b.id for b in claude.messages.batches.list()] == ids[::-1]  # the SDK follows after_id to the end
    assert [b.id for b in claude.messages.batches.list(limit=1000)] == ids[::-1]
    listed = sandbox.stats(log=False)["providers"]["anthropic"]["endpoints"]["batches_list"]
    assert listed["accepted"] == 4  # two pages, then one of each


def test_list_pages_with_cursors(claude: anthropic.Anthropic) -> None:
    ids = _create(claude, 10)
    newest = ids[::-1]
    page = claude.messages.batches.list(limit=4)
    assert [b.id for b in page.data] == newest[:4] and page.has_more is True
    after = claude.messages.batches.list(limit=4, after_id=page.last_id)  # type: ignore[arg-type]
    assert [b.id for b in after.data] == newest[4:8] and after.has_more is True
    last = claude.messages.batches.list(limit=4, after_id=after.last_id)  # type: ignore[arg-type]
    assert [b.id for b in last.data] == newest[8:] and last.has_more is False
    before = claude.messages.batches.list(limit=3, before_id=newest[5])
    assert [b.id for b in before.data] == newest[2:5] and before.has_more is True
    assert before.first_id == newest[2] and before.last_id == newest[4]
    # Paging backwards follows first_id until the newest batch.
    assert sorted(b.id for b in claude.messages.batches.list(limit=2, before_id=newest[5])) == sorted(newest[:5])
    top = claude.messages.batches.list(before_id=newest[1])
    assert [b.id for b in top.data] == newest[:1] and top.has_more is False


def test_list_shape_and_validation(sandbox: SandboxServer) -> None:
    with httpx.Client(base_url=sandbox.url, headers=HEADERS) as http:
        empty = http.get("/v1/messages/batches")
        assert empty.status_code == 200
        assert empty.json() == {"data": [], "has_more": False, "first_id": None, "last_id": None}
        body = {"requests": [_request("a")]}
        created = http.post("/v1/messages/batches", json=body).json()
        listed = http.get("/v1/messages/batches", params={"limit": 1}).json()
        assert listed["data"] == [created] and listed["first_id"] == listed["last_id"] == created["id"]
        for params in ({"limit": 0}, {"limit": 1001}, {"limit": "x"}, {"after_id": "a", "before_id": "b"},
                       {"after_id": "msgbatch_unknown"}):  # fmt: skip
            refused = http.get("/v1/messages/batches", params=params)
            assert refused.status_code == 400, params
            assert refused.json()["error"]["type"] == "invalid_request_error"


def test_list_shows_live_status(sandbox: SandboxServer, claude: anthropic.Anthropic) -> None:
    sandbox.configure("anthropic", job_duration_s=0)
    ended = claude.messages.batches.create(requests=[_request("a")])  # type: ignore[arg-type]
    sandbox.configure("anthropic", job_duration_s=30)
    running = claude.messages.batches.create(requests=[_request("a")])  # type: ignore[arg-type]
    listed = {b.id: b for b in claude.messages.batches.list()}
    assert listed[ended.id].processing_status == "ended" and listed[ended.id].results_url is not None
    assert listed[running.id].processing_status == "in_progress" and listed[running.id].results_url is None
    sandbox.reset()
    assert list(claude.messages.batches.list()) == []


# --- expired and canceled items --------------------------------------------------------------------------


def test_expire_and_cancel_item_faults(sandbox: SandboxServer, claude: anthropic.Anthropic) -> None:
    sandbox.configure(
        "anthropic",
        job_duration_s=0.3,
        faults=[
            {"kind": "expire", "match": "company-1"},
            {"kind": "cancel", "match": "company-2"},
            {"kind": "fail_run", "match": "company-3"},
        ],
    )
    requests = [_request(f"c{i}", f"level of company-{i}") for i in range(5)]
    batch = claude.messages.batches.create(requests=requests)  # type: ignore[arg-type]
    assert batch.request_counts.processing == 5 and batch.request_counts.expired == 0
    ended = _wait_ended(claude, batch.id)
    counts = ended.request_counts
    assert (counts.succeeded, counts.errored, counts.expired, counts.canceled, counts.processing) == (2, 1, 1, 1, 0)
    results = {r.custom_id: r.result for r in claude.messages.batches.results(batch.id)}
    assert {key: result.type for key, result in results.items()} == {
        "c0": "succeeded",
        "c1": "expired",
        "c2": "canceled",
        "c3": "errored",
        "c4": "succeeded",
    }
    faults = sandbox.stats(log=False)["providers"]["anthropic"]["endpoints"]["batches_create"]["faults"]
    assert faults == {"expire": 1, "cancel": 1, "fail_run": 1}
    # Only the two succeeded items are billed (expired, canceled and errored ones are free).
    expected = sum(
        (r.message.usage.input_tokens * 1_000 + r.message.usage.output_tokens * 5_000) // 2  # type: ignore[union-attr]
        for r in results.values()
        if r.type == "succeeded"
    )
    assert bill(sandbox, "anthropic", "batches_create") == billed(2, expected)


def test_expire_and_cancel_raw_lines(sandbox: SandboxServer) -> None:
    sandbox.configure("anthropic", job_duration_s=0, faults=[{"kind": "expire", "times": 1}, {"kind": "cancel"}])
    with httpx.Client(base_url=sandbox.url, headers=HEADERS) as http:
        batch = http.post("/v1/messages/batches", json={"requests": [_request("x"), _request("y")]}).json()
        lines = http.get(f"/v1/messages/batches/{batch['id']}/results").text.splitlines()
    by_id = {line["custom_id"]: line["result"] for line in map(json.loads, lines)}
    assert by_id == {"x": {"type": "expired"}, "y": {"type": "canceled"}}


def test_item_only_faults_do_not_touch_messages(sandbox: SandboxServer, claude: anthropic.Anthropic) -> None:
    sandbox.configure("anthropic", faults=[{"kind": "expire"}, {"kind": "cancel"}])
    message = claude.messages.create(model=MODEL, max_tokens=20, messages=[{"role": "user", "content": "hi"}])
    assert message.content[0].type == "text"
    assert sandbox.stats(log=False)["providers"]["anthropic"]["faults_total"] == 0


def test_results_order_is_unrelated_to_submission(sandbox: SandboxServer, claude: anthropic.Anthropic) -> None:
    sandbox.configure("anthropic", job_duration_s=0)
    submitted = [f"item-{i:02d}" for i in range(30)]
    batch = claude.messages.batches.create(requests=[_request(c) for c in submitted])  # type: ignore[arg-type]
    order = [r.custom_id for r in claude.messages.batches.results(batch.id)]
    assert sorted(order) == submitted and order != submitted
    assert [r.custom_id for r in claude.messages.batches.results(batch.id)] == order  # stable for one batch


@pytest.mark.parametrize("kind", ["expire", "cancel"])
def test_new_kinds_are_valid_config(sandbox: SandboxServer, kind: str) -> None:
    config = sandbox.configure("anthropic", faults=[{"kind": kind, "rate": 0.5}])
    assert config["anthropic"]["faults"][0]["kind"] == kind
