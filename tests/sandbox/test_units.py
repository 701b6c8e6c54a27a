"""Pure pieces of the sandbox, without a server: limits, peaks, config, generators, routing."""

from __future__ import annotations

import json
import math

import pytest

from sandbox.app import create_app
from sandbox.config import ConfigError, SandboxConfig
from sandbox.generate import LEVELS, Company, chat_reply, describe_company, schema_content
from sandbox.limits import SlidingWindow, format_groq_duration, format_retry_after
from sandbox.providers import classify
from sandbox.stats import peak_in_window
from sandbox.truth import truth_level
from sandbox.vectors import DIMENSIONS, embed


def test_sliding_window_is_not_a_fixed_bucket() -> None:
    window = SlidingWindow()
    for t in (0.0, 10.0, 20.0, 30.0, 40.0):
        assert window.retry_after(t, limit=5, window=60.0) is None
        window.add(t)
    assert window.retry_after(59.0, 5, 60.0) == pytest.approx(1.0)  # the request at t=0 frees the slot
    assert window.retry_after(60.0, 5, 60.0) is None
    window.add(60.0)
    # A fixed minute bucket starting at 60 would accept 5 more; the sliding window still holds 10..60.
    assert window.retry_after(61.0, 5, 60.0) == pytest.approx(9.0)


def test_sliding_window_after_limit_lowered() -> None:
    window = SlidingWindow()
    for t in (0.0, 1.0, 2.0, 3.0):
        window.add(t)
    # Down to 2 per window: three requests (0, 1, 2) must leave, the last of them at 2 + 60.
    assert window.retry_after(4.0, 2, 60.0) == pytest.approx(58.0)


def test_peak_in_window_is_exact() -> None:
    assert peak_in_window([], 60.0) == 0
    assert peak_in_window([0.0, 30.0, 59.9, 60.0, 61.0], 60.0) == 4  # (1, 61] holds 30, 59.9, 60, 61
    assert peak_in_window([0.0, 59.0, 119.0], 60.0) == 2
    assert peak_in_window([0.0, 60.0, 120.0], 60.0) == 1  # windows are (t - 60, t]


def test_header_formats() -> None:
    assert format_retry_after(0.01) == "0.1"
    assert format_retry_after(2.31) == "2.4"
    assert float(format_retry_after(59.99)) == 60.0
    assert format_groq_duration(179.56) == "2m59.56s"
    assert format_groq_duration(7.66) == "7.66s"
    assert format_groq_duration(86_399.999) == "24h0m0s"


def test_config_patch_is_partial_and_validated() -> None:
    config = SandboxConfig().patched({"groq": {"requests_per_minute": 30}})
    config = config.patched({"groq": {"latency_ms": 5}})
    assert config.groq.requests_per_minute == 30 and config.groq.latency_ms == 5
    with pytest.raises(ConfigError):
        config.patched({"groq": {"requests_per_min": 30}})
    with pytest.raises(ConfigError):
        config.patched({"mistral": {}})
    with pytest.raises(ConfigError):
        config.patched({"parallel": {"faults": [{"kind": "explode"}]}})


def test_every_provider_route_is_classified() -> None:
    """The gateway's route table and the FastAPI routes must describe the same endpoints."""
    paths = create_app().openapi()["paths"]
    seen = set()
    for template, operations in paths.items():
        if template.startswith("/_sandbox") or template == "/alerts":
            continue  # admin routes, and the alert receiver (it stands for the operator's webhook, not a provider)
        path = template.replace("{run_id}", "trun_x").replace("{batch_id}", "msgbatch_x")
        path = path.replace("{account_id}", "acc")
        for method in operations:
            match = classify(method.upper(), path)
            assert match is not None, (method, path)
            seen.add((match.provider, match.endpoint))
    assert len(seen) == 13


def test_describe_company() -> None:
    assert describe_company({"name": "Acme BV", "website": "https://www.acme.nl/about"}) == Company(
        "Acme BV", "acme.nl"
    )
    assert describe_company("https://globex.com").domain == "globex.com"
    assert describe_company("Initech").domain == "initech.example"


def test_schema_content_follows_schema_and_is_marked() -> None:
    schema = {
        "type": "object",
        "properties": {
            "products": {"type": "array", "items": {"type": "string"}, "minItems": 3},
            "ownership_type": {"enum": ["private", "public"]},
            "profile": {"$ref": "#/$defs/Profile"},
            "website": {"type": ["string", "null"]},
            "founded": {"type": "integer", "minimum": 1900, "maximum": 2026},
        },
        "required": ["products", "ownership_type"],
        "$defs": {"Profile": {"type": "object", "properties": {"summary": {"type": "string"}}}},
    }
    company = Company("Acme BV", "acme.nl")
    content = schema_content(schema, company)
    assert content == schema_content(schema, company)
    assert content["products"] == [f"Sandbox products {i} for Acme BV" for i in (1, 2, 3)]
    assert content["ownership_type"] == "private"
    assert content["profile"] == {"summary": "Sandbox summary for Acme BV"}
    assert content["website"] == "https://acme.nl/sandbox"
    assert 1900 <= content["founded"] <= 2026
    broken = schema_content(schema, company, invalid=True)
    assert "products" not in broken and "ownership_type" not in broken and "profile" in broken


def test_chat_reply_levels_are_deterministic() -> None:
    def ask(i: int) -> list[tuple[str, str]]:
        return [("user", f"Company profile:\nCompany: Firm {i}\n\nCriterion: AI strategy\nAnswer with the level")]

    replies = {chat_reply(ask(i)) for i in range(200)}
    levels = {json.loads(r)["level"] for r in replies}
    assert levels == set(LEVELS)  # all four levels occur across companies
    assert chat_reply(ask(1)) == chat_reply(ask(1))
    assert json.loads(chat_reply(ask(1)))["level"] == truth_level("Company: Firm 1", "AI strategy")
    assert "Sandbox" in chat_reply([("user", "hello")])


def test_vectors_are_unit_norm_and_meaningful() -> None:
    a = embed("Acme robotics Amsterdam", "cls")
    b = embed("Acme robotics Rotterdam", "cls")
    c = embed("The weather is lovely today", "cls")
    assert len(a) == DIMENSIONS and math.isclose(sum(x * x for x in a), 1.0, rel_tol=1e-9)
    assert embed("Acme robotics Amsterdam", "cls") == a

    def cos(u: list[float], v: list[float]) -> float:
        return sum(x * y for x, y in zip(u, v, strict=True))

    assert cos(a, b) > 0.5 > abs(cos(a, c))
    assert embed("Acme robotics Amsterdam", "mean") != a  # poolings are separate spaces
