"""The LLM reclassify prompt, and what a valid answer to it is.

One request per company.  The system prompt states the taxonomy (its version, the section letters, the business
models) and the exact JSON keys to answer with; column mode (``target_column``) asks for that one key only, a
shorter and cheaper prompt.  The user message is the company's own text: name, NACE code, industry, activity,
website.

An answer is valid when it is one JSON object (a fenced code block is tolerated) whose keys include every asked
field, each normalisable (``core.taxonomy.normalise_value``) and consistent (``check_classification``: the
division lies in the section).  Anything else is an :class:`InvalidAnswer` whose message is the reason the
company is flagged ``needs_review`` with: the product's rule for LLM output it cannot use.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from core.taxonomy import BUSINESS_MODELS, CLASSIFICATION_FIELDS, SECTIONS, TAXONOMY_VERSION, check_classification
from core.taxonomy import normalise_value as normalise

#: the marker the answer keys follow in the system prompt (the sandbox reads the keys from it)
KEYS_MARKER = "with exactly these keys:"
_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)
_FIELD_RULES = {
    "sector": 'sector: the NACE Rev. 2 section letter, A to U (for example "J").',
    "subsector": 'subsector: the two-digit NACE Rev. 2 division, which must lie in the section (for example "62").',
    "business_model": f"business_model: one of {', '.join(BUSINESS_MODELS)}.",
}


class InvalidAnswer(ValueError):
    """An answer that does not fit the taxonomy; ``str()`` is the review reason."""


@dataclass(frozen=True)
class CompanyText:
    """What the model is shown of a company."""

    name: str | None
    nace_code: str | None
    industry: str | None
    activity_description: str | None
    website: str | None

    def is_empty(self) -> bool:
        """Nothing a model could classify from: sending it would pay for a guess."""
        return not any((self.nace_code, self.industry, self.activity_description, self.name))


def asked_fields(target_column: str | None) -> tuple[str, ...]:
    return (target_column,) if target_column is not None else CLASSIFICATION_FIELDS


def system_prompt(target_column: str | None = None) -> str:
    fields = asked_fields(target_column)
    sections = ", ".join(f"{letter} {section.title}" for letter, section in SECTIONS.items())
    lines = [
        f"You classify companies for a company database with the NACE Rev. 2 taxonomy (version {TAXONOMY_VERSION}).",
        *([f"NACE Rev. 2 sections: {sections}."] if {"sector", "subsector"} & set(fields) else []),
        f"Answer with one JSON object and nothing else, {KEYS_MARKER} {', '.join(fields)}.",
        *(f"- {_FIELD_RULES[field]}" for field in fields),
        "Judge from the company's own text; when it gives a NACE code, it is usually right.",
    ]
    return "\n".join(lines)


def user_message(company: CompanyText) -> str:
    lines = ["Classify this company."]
    for label, value in (
        ("Name", company.name),
        ("NACE code", company.nace_code),
        ("Industry", company.industry),
        ("Activity", company.activity_description),
        ("Website", company.website),
    ):
        if value:
            lines.append(f"{label}: {' '.join(str(value).split())}")
    return "\n".join(lines)


def parse_answer(text: str, fields: Sequence[str]) -> dict[str, str]:
    """The asked fields of a model's answer, normalised and checked, or :class:`InvalidAnswer`."""
    body = text.strip()
    fenced = _FENCE.match(body)
    if fenced:
        body = fenced.group(1)
    try:
        answer: Any = json.loads(body)
    except ValueError:
        raise InvalidAnswer(f"reclassify: the model's answer is not JSON: {_excerpt(text)}") from None
    if not isinstance(answer, dict):
        raise InvalidAnswer(f"reclassify: the model's answer is not a JSON object: {_excerpt(text)}")
    values: dict[str, str] = {}
    problems: list[str] = []
    for field in fields:
        raw = answer.get(field)
        if raw is None:
            problems.append(f"{field} is missing")
            continue
        value = normalise(field, str(raw))
        if value is None:
            problems.append(f"{field} {str(raw)[:40]!r} is not in the taxonomy")
        else:
            values[field] = value
    if not problems:
        problems = check_classification(values.get("sector"), values.get("subsector"), values.get("business_model"))
    if problems:
        raise InvalidAnswer("reclassify: the model's answer does not fit the taxonomy: " + "; ".join(problems))
    return values


def _excerpt(text: str, limit: int = 80) -> str:
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= limit else flat[: limit - 1] + "…")
