"""The rubric: criteria, points, the prompt contract and the parser of answers."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from core.errors import InvalidProviderOutputError
from core.rubric import (
    CRITERIA,
    MAX_TOTAL,
    Level,
    build_prompt,
    input_sha256,
    parse_judgement,
    parse_level,
    read_prompt,
    repair_prompt,
    total_points,
)
from sandbox.generate import asks_for_level


@dataclass(frozen=True)
class Profile:
    name: str = "Acme Analytics BV"
    industry: str | None = "Software development"
    country: str | None = "NL"
    website: str | None = "https://www.acme-analytics.nl"
    ownership_type: str | None = None
    activity_description: str | None = "Builds data platforms and AI and machine-learning solutions."


def test_ten_named_criteria_and_the_level_points() -> None:
    assert len(CRITERIA) == 10
    assert len({c.key for c in CRITERIA}) == 10 and len({c.name for c in CRITERIA}) == 10
    assert all(c.definition and c.keywords for c in CRITERIA)
    assert [level.points for level in Level] == [0, 1, 3, 5]
    assert MAX_TOTAL == 50
    assert total_points({c.key: Level.VERY_HIGH for c in CRITERIA}) == 50
    assert total_points({c.key: Level.LOW for c in CRITERIA}) == 0
    with pytest.raises(ValueError, match="missing"):
        total_points({CRITERIA[0].key: Level.HIGH})


def test_the_prompt_asks_for_the_json_level_and_carries_the_company() -> None:
    messages = build_prompt(Profile(), CRITERIA[2])
    assert [m["role"] for m in messages] == ["system", "user"]
    user = messages[1]["content"]
    assert '{"level": "Low|Medium|High|Very High", "reasoning": "..."}' in user
    assert asks_for_level(user)  # the sandbox answers with a level exactly when we ask for one
    assert user.startswith("Company profile:\nCompany: Acme Analytics BV")
    assert CRITERIA[2].name in user and CRITERIA[2].definition in user
    assert "Ownership: unknown" in user  # missing facts are said, not dropped
    parts = read_prompt(messages)
    assert parts.criterion == CRITERIA[2] and "machine-learning" in parts.profile
    assert read_prompt(repair_prompt(messages, "garbage")).criterion == CRITERIA[2]
    with pytest.raises(ValueError):
        read_prompt([{"role": "user", "content": "hello"}])


def test_the_input_hash_follows_the_profile() -> None:
    assert input_sha256(Profile()) == input_sha256(Profile())
    assert input_sha256(Profile()) != input_sha256(Profile(activity_description="Bakes bread."))


@pytest.mark.parametrize(
    ("text", "level"),
    [
        ('{"level": "High", "reasoning": "clear evidence"}', Level.HIGH),
        ('```json\n{"level": "Very High", "reasoning": "x"}\n```', Level.VERY_HIGH),
        ('```\n{"level": "Low"}\n```', Level.LOW),
        ('Here you go: {"level": "medium", "reasoning": "some"} Hope it helps.', Level.MEDIUM),
        ('  {"level": " very high ", "reasoning": ""}  ', Level.VERY_HIGH),
    ],
)
def test_parse_accepts_the_json_object(text: str, level: Level) -> None:
    assert parse_level(text) is level


@pytest.mark.parametrize(
    "text",
    [
        '{"level": "Extreme", "reasoning": "sandbox invalid output"}',
        "Sandbox invalid output 1a2b: the level is probably high {",
        '{"reasoning": "no level"}',
        '{"level": 3}',
        '["High"]',
        "",
        '{"level": "High", "reasoning": 42}',
    ],
)
def test_parse_refuses_anything_else(text: str) -> None:
    with pytest.raises(InvalidProviderOutputError):
        parse_level(text)


def test_parse_keeps_the_reasoning() -> None:
    judgement = parse_judgement('{"level": "High", "reasoning": "  Ships an LLM copilot.  "}')
    assert judgement.level is Level.HIGH and judgement.reasoning == "Ships an LLM copilot."
