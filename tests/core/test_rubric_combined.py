"""The cheap tier's one-call prompt: what it asks, and how its reply is read (and answered by the sandbox)."""

from __future__ import annotations

import json

from core.rubric import CRITERIA, company_profile
from core.rubric_combined import build_combined_prompt, parse_combined
from core.synthetic import generate_companies
from sandbox.generate import chat_reply
from sandbox.truth import model_level


def test_one_prompt_lists_every_criterion_and_the_sandbox_answers_each_with_its_truth() -> None:
    company = generate_companies(1, seed=41)[0]
    messages = build_combined_prompt(company)
    assert all(f"- {criterion.name}: {criterion.definition}" in messages[1]["content"] for criterion in CRITERIA)
    reply = chat_reply([(m["role"], m["content"]) for m in messages], model="llama-3.1-8b-instant", noise=0.2)
    found, undecided = parse_combined(reply)
    assert undecided == []
    profile = company_profile(company)
    for criterion in CRITERIA:
        assert found[criterion.key].level.value == model_level(profile, criterion.name, "llama-3.1-8b-instant", 0.2)


def test_missing_or_garbled_criteria_are_undecided_never_an_error() -> None:
    first, second, *rest = CRITERIA
    reply = json.dumps({first.name: {"level": "High", "reasoning": "x"}, second.name: {"level": "Extreme"}})
    found, undecided = parse_combined(f"Here you go:\n```json\n{reply}\n```")
    assert list(found) == [first.key] and found[first.key].level.value == "High"
    assert undecided == [second.key, *(c.key for c in rest)]
    assert parse_combined("not json at all") == ({}, [c.key for c in CRITERIA])
