"""The server-side web search tool: the blocks the SDK parses, its usage, and its price in the sandbox's bill."""

from __future__ import annotations

import json
import time
from typing import Any

import anthropic
import httpx
import pytest
from anthropic.types import ServerToolUseBlock, TextBlock, WebSearchResultBlock, WebSearchToolResultBlock

from sandbox.prices import Charge, token_charge
from sandbox.server import SandboxServer

from .test_billing import bill, billed

SONNET = "claude-sonnet-4-5"
HAIKU = "claude-haiku-4-5"
SEARCH_NANOUSD = 10_000_000  # $10 per 1,000 searches
WEB_SEARCH: dict[str, Any] = {"type": "web_search_20250305", "name": "web_search", "max_uses": 3}
SYSTEM = (
    "You classify companies with the NACE Rev. 2 taxonomy.\n"
    "Answer with one JSON object and nothing else, with exactly these keys: sector, subsector, business_model."
)
COMPANY = "Classify this company.\nName: Acme GmbH\nIndustry: Software\nWebsite: acme.de"
HEADERS = {"x-api-key": "k", "anthropic-version": "2023-06-01"}


def _params(model: str = SONNET, tools: Any = (WEB_SEARCH,)) -> dict[str, Any]:
    params: dict[str, Any] = {
        "model": model,
        "max_tokens": 200,
        "system": SYSTEM,
        "messages": [{"role": "user", "content": COMPANY}],
    }
    if tools is not None:
        params["tools"] = list(tools)
    return params


def _assert_search_blocks(content: list[Any]) -> str:
    """The search blocks precede the text; returns the text."""
    assert [block.type for block in content] == ["server_tool_use", "web_search_tool_result", "text"]
    use, result, text = content
    assert isinstance(use, ServerToolUseBlock) and use.name == "web_search" and use.id.startswith("srvtoolu_")
    assert use.input == {"query": "Acme GmbH acme.de"}
    assert isinstance(result, WebSearchToolResultBlock) and result.tool_use_id == use.id
    assert isinstance(result.content, list) and len(result.content) == 1
    hit = result.content[0]
    assert isinstance(hit, WebSearchResultBlock)
    assert hit.url == "https://acme.de/" and hit.encrypted_content == "sandbox" and hit.page_age is None
    assert isinstance(text, TextBlock)
    return text.text


def test_messages_with_web_search(sandbox: SandboxServer, claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(**_params())
    text = _assert_search_blocks(message.content)
    assert json.loads(text) == {"sector": "J", "subsector": "62", "business_model": json.loads(text)["business_model"]}
    assert message.usage.server_tool_use is not None and message.usage.server_tool_use.web_search_requests == 1
    tokens = message.usage.input_tokens * 3_000 + message.usage.output_tokens * 15_000
    assert bill(sandbox, "anthropic", "messages") == billed(1, tokens + SEARCH_NANOUSD)
    totals = sandbox.stats(log=False)["providers"]["anthropic"]
    assert totals["list_price_nanousd"] == tokens + SEARCH_NANOUSD and totals["web_search_requests"] == 1
    assert totals["endpoints"]["messages"]["web_search_requests"] == 1
    # Without the tool: just the text, no server tool usage, no search in the bill.
    plain = claude.messages.create(**_params(tools=None))
    assert [block.type for block in plain.content] == ["text"] and plain.content[0].text == text  # type: ignore[union-attr]
    assert plain.usage.server_tool_use is None
    assert sandbox.stats(log=False)["providers"]["anthropic"]["web_search_requests"] == 1


def test_web_search_wire_format(sandbox: SandboxServer) -> None:
    with httpx.Client(base_url=sandbox.url, headers=HEADERS) as http:
        body = http.post("/v1/messages", json=_params()).json()
    assert body["usage"]["server_tool_use"]["web_search_requests"] == 1
    use, result, _ = body["content"]
    assert set(use) == {"type", "id", "name", "input"}
    assert result["content"] == [
        {
            "type": "web_search_result",
            "url": "https://acme.de/",
            "title": "Acme GmbH (sandbox search result)",
            "encrypted_content": "sandbox",
            "page_age": None,
        }
    ]


def test_web_search_in_batch_is_not_discounted(sandbox: SandboxServer, claude: anthropic.Anthropic) -> None:
    sandbox.configure("anthropic", job_duration_s=0.2)
    requests = [
        {"custom_id": "with-search-1", "params": _params(HAIKU)},
        {"custom_id": "with-search-2", "params": {**_params(HAIKU), "tools": [{**WEB_SEARCH, "max_uses": 1}]}},
        {"custom_id": "plain", "params": _params(HAIKU, tools=None)},
    ]
    batch = claude.messages.batches.create(requests=requests)  # type: ignore[arg-type]
    deadline = time.monotonic() + 5
    while claude.messages.batches.retrieve(batch.id).processing_status != "ended":
        assert time.monotonic() < deadline
        time.sleep(0.02)  # polling the server's status with a deadline
    expected = 0
    for line in claude.messages.batches.results(batch.id):
        assert line.result.type == "succeeded"
        message = line.result.message
        if line.custom_id == "plain":
            assert [block.type for block in message.content] == ["text"]
        else:
            _assert_search_blocks(message.content)
            assert message.usage.server_tool_use is not None
            assert message.usage.server_tool_use.web_search_requests == 1
        searches = 0 if line.custom_id == "plain" else 1
        expected += (message.usage.input_tokens * 1_000 + message.usage.output_tokens * 5_000) // 2
        expected += searches * SEARCH_NANOUSD
    assert bill(sandbox, "anthropic", "batches_create") == billed(3, expected)
    assert sandbox.stats(log=False)["providers"]["anthropic"]["web_search_requests"] == 2


def test_web_search_prices() -> None:
    assert token_charge("anthropic", SONNET, 10, 2, web_searches=1) == Charge(30_000 + 30_000 + SEARCH_NANOUSD, 1)
    batch = token_charge("anthropic", SONNET, 10, 2, batch=True, web_searches=2)
    assert batch == Charge(30_000 + 2 * SEARCH_NANOUSD, 2)  # tokens at half price, searches at full price
    assert token_charge("anthropic", "claude-unknown", 10, 2, web_searches=1) == Charge(None, 1)
    assert token_charge("anthropic", SONNET, 10, 2) == Charge(60_000)


@pytest.mark.parametrize(
    "tools",
    [
        "web_search",
        {"type": "web_search_20250305", "name": "web_search"},
        [{"type": "web_search_20250305"}],
        [{"name": "web_search"}],
        ["web_search"],
        [{"type": "web_search_20250305", "name": "search"}],
        [{**WEB_SEARCH, "max_uses": 0}],
    ],
)
def test_invalid_tools_are_refused(sandbox: SandboxServer, tools: Any) -> None:
    with httpx.Client(base_url=sandbox.url, headers=HEADERS) as http:
        message = http.post("/v1/messages", json={**_params(), "tools": tools})
        assert message.status_code == 400
        assert message.json()["error"]["type"] == "invalid_request_error"
        assert "tools" in message.json()["error"]["message"]
        batch = http.post(
            "/v1/messages/batches", json={"requests": [{"custom_id": "a", "params": {**_params(), "tools": tools}}]}
        )
        assert batch.status_code == 400 and "requests.0.params.tools" in batch.json()["error"]["message"]
    assert bill(sandbox, "anthropic") == billed(0, 0)


def test_other_tools_are_accepted_without_search(claude: anthropic.Anthropic) -> None:
    tool = {"type": "custom", "name": "lookup", "input_schema": {"type": "object"}}
    message = claude.messages.create(**_params(tools=[tool]))
    assert [block.type for block in message.content] == ["text"]
