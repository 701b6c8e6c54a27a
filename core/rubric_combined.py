"""All ten criteria in one prompt: the cheap tier's way to score a company in a single call.

A per-criterion prompt repeats the system prompt, the profile and the level guide ten times, and input tokens
are most of what a scoring call costs: asked once with every criterion listed, a company costs about a fifth
of the input tokens.  Models answer a single criterion more reliably, which is why the premium tier (and
untiered scoring) keeps one call per criterion; a cheap tier only has to be good enough to tell the companies it
is sure of from those it sends up, and a criterion it leaves out or answers badly is simply *undecided*.

The reply is one JSON object keyed by the criteria's names as listed, each ``{"level", "reasoning"}``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from core.errors import InvalidProviderOutputError
from core.rubric import (
    CRITERIA,
    LEVEL_GUIDE,
    PROFILE_HEADER,
    SYSTEM_PROMPT,
    ChatMessage,
    CompanyLike,
    Criterion,
    Judgement,
    company_profile,
    json_candidates,
    parse_judgement,
)

CRITERIA_HEADER = "Criteria:"
COMBINED_FORMAT = '{"<criterion name>": {"level": "Low|Medium|High|Very High", "reasoning": "..."}, ...}'


def build_combined_prompt(company: CompanyLike, criteria: Sequence[Criterion] = CRITERIA) -> list[ChatMessage]:
    """System + one user message asking for every criterion's level as one JSON object."""
    listed = "\n".join(f"- {criterion.name}: {criterion.definition}" for criterion in criteria)
    user = (
        f"{PROFILE_HEADER}\n{company_profile(company)}\n\n"
        f"{CRITERIA_HEADER}\n{listed}\n\n"
        f"Rate the company's level on each criterion. Levels: {LEVEL_GUIDE}\n"
        f"Reply with only this JSON object, one entry per criterion name above: {COMBINED_FORMAT} "
        "where each reasoning is one sentence citing the evidence."
    )
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


def parse_combined(text: str, criteria: Sequence[Criterion] = CRITERIA) -> tuple[dict[str, Judgement], list[str]]:
    """The judgements the reply gives (by criterion key) and the keys it leaves undecided.

    Never raises for one bad entry: a missing criterion or an unreadable level is undecided, and a reply that is
    not a JSON object at all leaves every criterion undecided.
    """
    answers = _object(text)
    by_name: Mapping[str, object] = {str(k).strip().casefold(): v for k, v in answers.items()}
    found: dict[str, Judgement] = {}
    undecided: list[str] = []
    for criterion in criteria:
        entry = by_name.get(criterion.name.casefold(), by_name.get(criterion.key))
        try:
            if not isinstance(entry, dict):
                raise InvalidProviderOutputError(f"no answer for {criterion.name}")
            found[criterion.key] = parse_judgement(json.dumps(entry))
        except InvalidProviderOutputError:
            undecided.append(criterion.key)
    return found, undecided


def _object(text: str) -> dict[str, object]:
    for candidate in json_candidates(text or ""):
        try:
            payload = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(payload, dict):
            return payload
    return {}
