"""The LLM-adoption rubric: ten named criteria, four levels, the prompt and the parser of the answer.

A company is judged on each criterion separately (one provider call each), so a reply only has to carry one
level and a short reasoning; levels map onto points ``Low=0, Medium=1, High=3, Very High=5`` (the gaps make a
clear "High" worth more than three vague "Medium"s), and the ten points add up to a total of 0-50.

The prompt and the parser live together because they are one contract: the user message asks for the JSON
object ``{"level": ..., "reasoning": ...}`` (and says the word "level", which is also what the provider sandbox
keys on), and :func:`parse_judgement` accepts exactly that object (bare, fenced in a Markdown code block, or
wrapped in a sentence) and nothing else.  An answer that does not parse raises
``InvalidProviderOutputError``: the caller decides whether to ask again.

``RUBRIC_VERSION`` changes whenever criteria, levels or the prompt change; it is part of the hash stored with
each score, so a rescoring run knows which scores are still current.
"""

from __future__ import annotations

import enum
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from core.errors import InvalidProviderOutputError
from core.text import EmbeddingFields

RUBRIC_VERSION = "llm-adoption-v1"
TOTAL_CRITERION = "total"


class Level(enum.StrEnum):
    LOW = "Low"
    MEDIUM = "Medium"
    HIGH = "High"
    VERY_HIGH = "Very High"

    @property
    def points(self) -> int:
        return LEVEL_POINTS[self]


LEVEL_POINTS: Mapping[Level, int] = {Level.LOW: 0, Level.MEDIUM: 1, Level.HIGH: 3, Level.VERY_HIGH: 5}


@dataclass(frozen=True)
class Criterion:
    """One thing the rubric looks at.

    ``key`` is what is stored (names may be reworded, keys never are); ``keywords`` are the evidence the offline
    local-rules provider looks for in a company's profile, so the rubric alone defines what counts as evidence.
    """

    key: str
    name: str
    definition: str
    keywords: tuple[str, ...]


CRITERIA: tuple[Criterion, ...] = (
    Criterion(
        "ai_strategy",
        "AI strategy",
        "Leadership has a stated plan for AI and LLMs, with goals, owners and budget.",
        ("ai", "ai strategy", "artificial intelligence", "ai-first", "ai roadmap", "digital transformation"),
    ),
    Criterion(
        "data_infrastructure",
        "Data infrastructure",
        "Data is collected, cleaned and reachable (warehouse, lake, APIs) so models can use it.",
        ("data platform", "data warehouse", "data lake", "cloud", "analytics", "data processing", "integration"),
    ),
    Criterion(
        "llm_in_products",
        "LLM use in products",
        "The products or services the company sells embed LLM or generative-AI features.",
        ("llm", "generative ai", "genai", "chatbot", "machine-learning solutions", "ai-powered", "copilot"),
    ),
    Criterion(
        "internal_llm_tooling",
        "Internal LLM tooling",
        "Staff use LLM assistants or internal LLM tools in their daily work.",
        ("copilot", "assistant", "knowledge base", "internal tools", "chatgpt", "llm"),
    ),
    Criterion(
        "ai_talent",
        "AI talent",
        "The company employs or hires data scientists, ML engineers or AI specialists.",
        ("data scientist", "machine learning", "machine-learning", "ml engineer", "ai specialist", "research"),
    ),
    Criterion(
        "process_automation",
        "Automation of processes",
        "Core business processes are automated with software, robotics or AI.",
        ("automation", "automated", "robotics", "software", "digital", "workflow", "erp"),
    ),
    Criterion(
        "customer_facing_ai",
        "Customer-facing AI",
        "Customers meet AI directly: chat, recommendations, personalisation, self-service.",
        ("chatbot", "personalisation", "personalization", "recommendation", "self-service", "e-commerce"),
    ),
    Criterion(
        "ai_governance",
        "AI governance & risk",
        "Policies, oversight and risk controls for AI use exist (EU AI Act, privacy, security).",
        ("governance", "compliance", "gdpr", "ai act", "cybersecurity", "risk", "certified"),
    ),
    Criterion(
        "ai_vendor_partnerships",
        "Partnerships with AI vendors",
        "The company partners with AI or cloud vendors (OpenAI, Microsoft, Google, AWS, Nvidia ...).",
        ("partner", "openai", "microsoft", "google", "aws", "nvidia", "azure"),
    ),
    Criterion(
        "ai_investment",
        "Investment in AI",
        "Money goes into AI: dedicated budget, acquisitions, R&D or funded AI projects.",
        ("investment", "invests", "r&d", "research and development", "funding", "venture", "acquisition"),
    ),
)
CRITERIA_BY_KEY: Mapping[str, Criterion] = {c.key: c for c in CRITERIA}
MAX_TOTAL = len(CRITERIA) * max(LEVEL_POINTS.values())

SYSTEM_PROMPT = (
    "You are an analyst who assesses how far companies have adopted AI and large language models (LLMs). "
    "Judge only from the company profile you are given; when it shows no evidence, the level is Low. "
    "Answer with a single JSON object and nothing else."
)

ANSWER_FORMAT = '{"level": "Low|Medium|High|Very High", "reasoning": "..."}'

LEVEL_GUIDE = (
    "Low = no evidence; Medium = early or indirect signs; High = clear, repeated evidence; "
    "Very High = AI is central to how the company works or what it sells."
)


class CompanyLike(EmbeddingFields, Protocol):
    """What the rubric reads of a company: the embedding template's fields and two more (``Company`` fits)."""

    @property
    def website(self) -> str | None: ...
    @property
    def ownership_type(self) -> str | None: ...


ChatMessage = dict[str, str]

_PROFILE_HEADER = "Company profile:"
PROFILE_HEADER = _PROFILE_HEADER
_CRITERION_PREFIX = "Criterion: "


def company_profile(company: CompanyLike) -> str:
    """The facts a judge sees, one per line; the name comes first so it is easy to find in provider logs."""
    fields = (
        ("Company", company.name),
        ("Industry", company.industry),
        ("Country", company.country),
        ("Website", company.website),
        ("Ownership", company.ownership_type),
        ("Business", company.activity_description),
    )
    return "\n".join(f"{label}: {(value or 'unknown').strip()}" for label, value in fields)


def build_prompt(company: CompanyLike, criterion: Criterion) -> list[ChatMessage]:
    """System + user message asking for one criterion's level as JSON."""
    user = (
        f"{_PROFILE_HEADER}\n{company_profile(company)}\n\n"
        f"{_CRITERION_PREFIX}{criterion.name}\n"
        f"Definition: {criterion.definition}\n\n"
        f"Rate the company's level on this criterion. Levels: {LEVEL_GUIDE}\n"
        f"Reply with only this JSON object: {ANSWER_FORMAT} "
        "where reasoning is one or two sentences citing the evidence."
    )
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


def repair_prompt(messages: Sequence[Mapping[str, str]], bad_reply: str) -> list[ChatMessage]:
    """The conversation plus the reply that did not parse and a request to answer in the format.

    Asking again with the bad answer in view works better than repeating the same prompt, which a model at low
    temperature tends to answer the same way.
    """
    return [
        *(dict(m) for m in messages),
        {"role": "assistant", "content": bad_reply[:2000]},
        {
            "role": "user",
            "content": f"That reply could not be read. Answer with only the JSON object {ANSWER_FORMAT}, "
            "where level is exactly one of Low, Medium, High, Very High.",
        },
    ]


def input_sha256(company: CompanyLike) -> str:
    """Identifies what a company's scoring asks (rubric version + all ten prompts).

    Equal hashes mean stored scores answer the same questions, so they are current: a changed profile, criterion
    or prompt gives a new hash and the company is scored again.
    """
    prompts = [build_prompt(company, criterion) for criterion in CRITERIA]
    canonical = json.dumps([RUBRIC_VERSION, prompts], ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class PromptParts:
    """What :func:`read_prompt` recovers from a prompt built by :func:`build_prompt`."""

    criterion: Criterion
    profile: str


def read_prompt(messages: Sequence[Mapping[str, str]]) -> PromptParts:
    """Recover the criterion and the company profile from a rubric prompt (used by offline providers)."""
    for message in messages:
        content = message.get("content", "")
        if message.get("role") != "user" or not content.startswith(_PROFILE_HEADER):
            continue
        profile, _, rest = content[len(_PROFILE_HEADER) :].partition(f"\n\n{_CRITERION_PREFIX}")
        name = rest.split("\n", 1)[0].strip()
        for criterion in CRITERIA:
            if criterion.name == name:
                return PromptParts(criterion, profile.strip())
    raise ValueError("not a prompt of this rubric: no company profile and criterion found")


# --- parsing the answer ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Judgement:
    level: Level
    reasoning: str


_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)
_LEVELS_BY_TEXT: Mapping[str, Level] = {level.value.casefold(): level for level in Level}


def json_candidates(text: str) -> list[str]:
    """Where a JSON object may sit in a model's reply: the whole text, fenced blocks, the outermost braces."""
    return _candidates(text)


def _candidates(text: str) -> list[str]:
    """The places a JSON object may sit in a reply: the whole text, fenced blocks, the outermost braces."""
    stripped = text.strip()
    found = [stripped]
    found.extend(block.strip() for block in _FENCE.findall(stripped))
    start, end = stripped.find("{"), stripped.rfind("}")
    if 0 <= start < end:
        found.append(stripped[start : end + 1])
    return found


def parse_judgement(text: str) -> Judgement:
    """The level and reasoning of a reply; ``InvalidProviderOutputError`` for anything else.

    Accepted: the JSON object alone, inside a ```json fence, or surrounded by prose.  The level must be one of
    the four names (case and surrounding spaces are forgiven); ``reasoning`` is optional but must be text.
    """
    payload: object = None
    for candidate in _candidates(text or ""):
        try:
            payload = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(payload, dict):
            break
    if not isinstance(payload, dict):
        raise InvalidProviderOutputError(f"reply is not a JSON object: {_preview(text)}")
    if "level" not in payload:
        raise InvalidProviderOutputError(f"reply has no 'level': {_preview(text)}")
    raw_level = payload["level"]
    level = _LEVELS_BY_TEXT.get(raw_level.strip().casefold()) if isinstance(raw_level, str) else None
    if level is None:
        raise InvalidProviderOutputError(
            f"unknown level {raw_level!r}; expected one of {', '.join(level.value for level in Level)}"
        )
    reasoning = payload.get("reasoning", "")
    if not isinstance(reasoning, str):
        raise InvalidProviderOutputError("'reasoning' is not text")
    return Judgement(level, reasoning.strip())


def parse_level(text: str) -> Level:
    """Just the level of a reply (see :func:`parse_judgement`)."""
    return parse_judgement(text).level


def total_points(levels: Mapping[str, Level]) -> int:
    """The 0-50 total of one level per criterion; refuses an incomplete or unknown set."""
    if set(levels) != set(CRITERIA_BY_KEY):
        missing = sorted(set(CRITERIA_BY_KEY) - set(levels))
        unknown = sorted(set(levels) - set(CRITERIA_BY_KEY))
        raise ValueError(f"need one level per criterion (missing {missing}, unknown {unknown})")
    return sum(level.points for level in levels.values())


def _preview(text: str | None, limit: int = 120) -> str:
    flat = " ".join((text or "").split())
    return repr(flat[:limit] + ("…" if len(flat) > limit else ""))
