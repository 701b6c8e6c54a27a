"""A ground truth for scoring questions, and the noise that separates cheap models from premium ones.

A benchmark needs to know what the right answer was, without calling the API: :func:`truth_level` is a pure
function of (company profile, criterion name), so expected labels can be computed offline and compared with the
scores the project stored. The truth has a realistic skew: most companies adopt little AI, a few a lot, and one
company's criteria cluster around its overall adoption. Premium models answer the truth; cheaper ones
(:func:`model_level` with a ``noise`` rate from the config) are off by one step at that rate, so a benchmark can
measure what a cheap model costs in accuracy.

Scoring prompts look like the project's rubric prompts: a user message starting ``Company profile:\\n<lines>``
followed by ``\\n\\nCriterion: <name>``. A repair turn only appends messages, so it finds the same question and
gets the same answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sandbox.hashing import unit_interval

LEVELS = ("Low", "Medium", "High", "Very High")
# Company-level adoption: most companies are at Low, few at Very High.
BASE_WEIGHTS = (0.45, 0.30, 0.15, 0.10)
# A criterion keeps its company's base level this often; otherwise it is one step up or down (clipped).
KEEP_BASE = 0.65

PROFILE_HEADER = "Company profile:"
CRITERION_MARKER = "\n\nCriterion:"


@dataclass(frozen=True)
class ScoringQuestion:
    """What a scoring prompt asks about: the profile text and the criterion's name (empty when unknown)."""

    profile: str
    criterion: str


def _clip(index: int) -> int:
    return min(len(LEVELS) - 1, max(0, index))


def adoption_base(profile: str) -> str:
    """The company's overall adoption level, drawn from :data:`BASE_WEIGHTS` by a hash of the profile alone."""
    draw = unit_interval("adoption-base", profile.strip())
    cumulative = 0.0
    for level, weight in zip(LEVELS, BASE_WEIGHTS, strict=True):
        cumulative += weight
        if draw < cumulative:
            return level
    return LEVELS[-1]


def truth_level(profile: str, criterion: str) -> str:
    """The true level of ``criterion`` (its name, e.g. "AI strategy") for the company described by ``profile``.

    ``profile`` is the text between ``Company profile:`` and ``Criterion:`` in the prompt (the lines the
    project's ``company_profile`` writes); surrounding whitespace is ignored in both arguments.
    """
    profile, criterion = profile.strip(), criterion.strip()
    base = LEVELS.index(adoption_base(profile))
    if unit_interval("criterion-keep", profile, criterion) < KEEP_BASE:
        return LEVELS[base]
    step = -1 if unit_interval("criterion-step", profile, criterion) < 0.5 else 1
    return LEVELS[_clip(base + step)]


def model_level(profile: str, criterion: str, model: str, noise: float) -> str:
    """What ``model`` answers: the truth, or with probability ``noise`` a level one step away from it.

    The step goes up or down by a hash; at Low or Very High it goes the only way it can, so ``noise`` is
    exactly the rate at which the model's answers differ from the truth. The draw hashes the model too: two
    noisy models are wrong on different questions, and one model is wrong the same way on every retry.
    """
    truth = LEVELS.index(truth_level(profile, criterion))
    profile, criterion = profile.strip(), criterion.strip()
    if noise <= 0 or unit_interval("noise", model, profile, criterion) >= noise:
        return LEVELS[truth]
    if truth == 0:
        return LEVELS[1]
    if truth == len(LEVELS) - 1:
        return LEVELS[truth - 1]
    step = -1 if unit_interval("noise-step", model, profile, criterion) < 0.5 else 1
    return LEVELS[truth + step]


def find_question(messages: Sequence[tuple[str, str]]) -> ScoringQuestion:
    """The question a conversation (``(role, text)`` pairs) asks.

    The first user message shaped like a rubric prompt gives profile and criterion; without one, the first user
    message as a whole stands for the profile (criterion empty), so any level question still has a truth.
    """
    first_user: str | None = None
    for role, text in messages:
        if role != "user":
            continue
        if first_user is None:
            first_user = text
        body = text.lstrip()
        if not body.startswith(PROFILE_HEADER):
            continue
        profile, found, rest = body[len(PROFILE_HEADER) :].partition(CRITERION_MARKER)
        if found:
            return ScoringQuestion(profile.strip(), rest.split("\n", 1)[0].strip())
    return ScoringQuestion((first_user or "").strip(), "")


COMBINED_MARKER = "\n\nCriteria:\n"


def find_combined_question(messages: Sequence[tuple[str, str]]) -> tuple[str, list[str]] | None:
    """(profile, criterion names) of a prompt that lists every criterion at once, or None.

    The project's cheap tier asks ``Company profile:\n<lines>\n\nCriteria:\n- <name>: <definition>\n...``
    and expects one JSON object keyed by those names; each criterion's truth is the same as when it is asked
    on its own.
    """
    for role, text in messages:
        body = text.lstrip()
        if role != "user" or not body.startswith(PROFILE_HEADER):
            continue
        profile, found, rest = body[len(PROFILE_HEADER) :].partition(COMBINED_MARKER)
        if not found:
            continue
        names = []
        for line in rest.split("\n\n", 1)[0].splitlines():
            if line.startswith("- ") and ": " in line:
                names.append(line[2:].split(": ", 1)[0].strip())
        return profile.strip(), names
    return None
