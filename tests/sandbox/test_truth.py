"""The truth behind level answers: a pure function of (profile, criterion), skewed like real adoption, and the
noise of cheap models, both directly and as clients meet it over HTTP."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import anthropic
import pytest

from sandbox.config import ConfigError, SandboxConfig
from sandbox.server import SandboxServer
from sandbox.truth import BASE_WEIGHTS, LEVELS, adoption_base, find_question, model_level, truth_level

from .conftest import Driver

SYSTEM = "You are an analyst who assesses how far companies have adopted AI. Answer with a single JSON object."
CRITERIA = ("AI strategy", "Data infrastructure", "LLM use in products", "AI talent")
N_PROFILES = 2_000


def profile(i: int) -> str:
    """Profile lines shaped like the project's (``Label: value`` per line)."""
    return (
        f"Company: Synthetic Firm {i} BV\nIndustry: Manufacturing\nCountry: NL\n"
        f"Website: https://firm-{i}.example\nOwnership: unknown\nBusiness: Makes part number {i * 7919}."
    )


def scoring_messages(profile_text: str, criterion: str) -> list[dict[str, str]]:
    """A system + user prompt in the shape of the project's rubric prompts."""
    user = (
        f"Company profile:\n{profile_text}\n\nCriterion: {criterion}\nDefinition: Something about AI.\n\n"
        'Rate the company\'s level on this criterion. Reply with only this JSON object: {"level": "...", '
        '"reasoning": "..."}'
    )
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def repair_messages(messages: list[dict[str, str]], bad_reply: str) -> list[dict[str, str]]:
    return [
        *messages,
        {"role": "assistant", "content": bad_reply},
        {"role": "user", "content": "That reply could not be read. Answer with the JSON object; level is one of ..."},
    ]


def chat(driver: Driver, messages: list[dict[str, str]], model: str, path: str = "/openai/v1/chat/completions") -> Any:
    body = {"model": model, "messages": messages, "temperature": 0.1}
    response = driver.http.post(path, json=body, headers={"Authorization": "Bearer k"})
    assert response.status_code == 200
    return json.loads(response.json()["choices"][0]["message"]["content"])


# --- the pure functions ----------------------------------------------------------------------------------


def test_truth_skew_holds_over_many_profiles() -> None:
    profiles = [profile(i) for i in range(N_PROFILES)]
    bases = Counter(adoption_base(p) for p in profiles)
    for level, weight in zip(LEVELS, BASE_WEIGHTS, strict=True):
        assert bases[level] / N_PROFILES == pytest.approx(weight, abs=0.035), level
    # Per criterion: the base with probability 0.65, else one step up or down, clipped at the ends.
    expected = {"Low": 0.42375, "Medium": 0.30, "High": 0.1675, "Very High": 0.10875}
    truths = Counter(truth_level(p, "AI strategy") for p in profiles)
    for level, share in expected.items():
        assert truths[level] / N_PROFILES == pytest.approx(share, abs=0.035), level
    kept = 0
    for p in profiles[:500]:
        base = LEVELS.index(adoption_base(p))
        for criterion in CRITERIA:
            step = LEVELS.index(truth_level(p, criterion)) - base
            assert abs(step) <= 1
            kept += step == 0
    assert kept / (500 * len(CRITERIA)) == pytest.approx(0.65 + 0.175 * (0.45 + 0.10), abs=0.04)


def test_truth_is_pure_and_ignores_surrounding_whitespace() -> None:
    assert truth_level(profile(1), "AI strategy") == truth_level(f"\n{profile(1)}  ", " AI strategy")
    assert len({truth_level(profile(1), c) for c in CRITERIA} | {truth_level(profile(i), "AI") for i in range(40)}) > 1


@pytest.mark.parametrize("noise", [0.1, 0.2])
def test_noisy_model_differs_from_the_truth_at_its_rate(noise: float) -> None:
    questions = [(profile(i), CRITERIA[i % len(CRITERIA)]) for i in range(N_PROFILES)]
    off = 0
    for p, c in questions:
        truth = LEVELS.index(truth_level(p, c))
        answer = LEVELS.index(model_level(p, c, "llama-3.1-8b-instant", noise))
        assert abs(answer - truth) <= 1
        off += answer != truth
    assert off / N_PROFILES == pytest.approx(noise, abs=0.025)
    assert all(model_level(p, c, "premium", 0.0) == truth_level(p, c) for p, c in questions[:200])
    assert all(model_level(p, c, "broken", 1.0) != truth_level(p, c) for p, c in questions[:200])


def test_find_question_reads_the_rubric_shape_and_falls_back() -> None:
    messages = scoring_messages(profile(3), "AI talent")
    pairs = [(m["role"], m["content"]) for m in messages]
    question = find_question(pairs)
    assert (question.profile, question.criterion) == (profile(3), "AI talent")
    repaired = [(m["role"], m["content"]) for m in repair_messages(messages, "oops")]
    assert find_question(repaired) == question
    fallback = find_question([("system", "x"), ("user", "  Rate the level of Acme  "), ("user", "again")])
    assert (fallback.profile, fallback.criterion) == ("Rate the level of Acme", "")


def test_model_noise_config_defaults_and_validation() -> None:
    config = SandboxConfig()
    assert config.groq.model_noise == {"llama-3.1-8b-instant": 0.2, "openai/gpt-oss-20b": 0.1}
    assert config.anthropic.model_noise == {"claude-haiku-4-5": 0.1} and config.openai.model_noise == {}
    assert config.anthropic.noise_for("claude-haiku-4-5-20251001") == 0.1
    assert config.groq.noise_for("openai/gpt-oss-120b") == 0.0
    partial = SandboxConfig.model_validate({"groq": {"requests_per_minute": 30}})
    assert partial.groq.model_noise == config.groq.model_noise  # a partial section keeps the defaults
    assert config.patched({"groq": {"model_noise": {}}}).groq.model_noise == {}
    with pytest.raises(ConfigError):
        config.patched({"groq": {"model_noise": {"llama-3.1-8b-instant": 1.5}}})


# --- over HTTP -------------------------------------------------------------------------------------------


def test_premium_models_answer_the_truth_across_paths_and_repairs(driver: Driver, claude: anthropic.Anthropic) -> None:
    for i in range(6):
        criterion = CRITERIA[i % len(CRITERIA)]
        truth = truth_level(profile(i), criterion)
        messages = scoring_messages(profile(i), criterion)
        groq = chat(driver, messages, "openai/gpt-oss-120b")
        assert groq["level"] == truth and "truth" in groq["reasoning"] and "Sandbox" in groq["reasoning"]
        assert chat(driver, repair_messages(messages, "not json"), "openai/gpt-oss-120b")["level"] == truth
        assert chat(driver, messages, "gpt-4o-mini", path="/v1/chat/completions")["level"] == truth
        reply = claude.messages.create(
            model="claude-sonnet-4-5",
            max_tokens=200,
            system=SYSTEM,
            messages=[m for m in repair_messages(messages, "{bad") if m["role"] != "system"],  # type: ignore[misc]
        )
        assert json.loads(reply.content[0].text)["level"] == truth  # type: ignore[union-attr]


def test_noisy_models_over_http(sandbox: SandboxServer, driver: Driver, claude: anthropic.Anthropic) -> None:
    questions = [(profile(i), CRITERIA[i % len(CRITERIA)]) for i in range(30)]
    off = 0
    for p, c in questions:
        answer = chat(driver, scoring_messages(p, c), "llama-3.1-8b-instant")
        assert answer["level"] == model_level(p, c, "llama-3.1-8b-instant", 0.2) and "noisy" in answer["reasoning"]
        off += answer["level"] != truth_level(p, c)
    assert 0 < off < len(questions)

    sandbox.configure("groq", model_noise={"llama-3.1-8b-instant": 1.0})
    p, c = questions[0]
    assert chat(driver, scoring_messages(p, c), "llama-3.1-8b-instant")["level"] != truth_level(p, c)

    sandbox.configure("anthropic", job_duration_s=0)
    requests = [
        {
            "custom_id": f"q{i}",
            "params": {"model": "claude-haiku-4-5", "max_tokens": 200, "system": SYSTEM,
                       "messages": scoring_messages(p, c)[1:]},
        }
        for i, (p, c) in enumerate(questions)
    ]  # fmt: skip
    batch = claude.messages.batches.create(requests=requests)  # type: ignore[arg-type]
    for result in claude.messages.batches.results(batch.id):
        p, c = questions[int(result.custom_id[1:])]
        level = json.loads(result.result.message.content[0].text)["level"]  # type: ignore[union-attr]
        assert level == model_level(p, c, "claude-haiku-4-5", 0.1)
