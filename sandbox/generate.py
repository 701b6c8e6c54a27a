"""Deterministic stand-ins for model output: chat replies, level judgements, schema-shaped research results.

Everything derives from a hash of the request, so the same input always gives the same output (tests can
assert exact values, reruns are comparable) and every string says "sandbox" so nobody mistakes it for real
research. Level judgements answer a ground truth (:mod:`sandbox.truth`) so benchmarks can score accuracy.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from sandbox.classify import classify_reply, find_classify_question
from sandbox.hashing import stable_hash
from sandbox.truth import LEVELS as LEVELS  # re-exported: callers and tests know the levels from here
from sandbox.truth import find_combined_question, find_question, model_level

INVALID_LEVEL = "Extreme"
MAX_SCHEMA_DEPTH = 8

_LEVEL_WORD = re.compile(r"\blevels?\b", re.IGNORECASE)
_URL = re.compile(r"https?://[^\s\"'<>]+", re.IGNORECASE)
_DOMAIN = re.compile(r"\b(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,}\b", re.IGNORECASE)


def count_tokens(text: str) -> int:
    """Approximate tokens as whitespace-separated words: enough for usage accounting in tests."""
    return len(text.split())


# --- chat ------------------------------------------------------------------------------------------------


def asks_for_level(prompt: str) -> bool:
    """Scoring prompts ask for ``{"level": ..., "reasoning": ...}`` and say so with the word "level"."""
    return bool(_LEVEL_WORD.search(prompt))


def chat_reply(
    messages: Sequence[tuple[str, str]], *, model: str = "", noise: float = 0.0, invalid: bool = False
) -> str:
    """The assistant text for a conversation of ``(role, text)`` pairs, as ``model`` would answer it.

    A level question (the last user message mentions "level") gets a JSON object whose level is the question's
    truth (:mod:`sandbox.truth`), moved one step at the rate ``noise`` for a cheap model; the reasoning says
    "truth" or "noisy" so stored scores show where they came from. Anything else gets a short deterministic
    sentence. ``invalid`` produces what a misbehaving model returns: an unknown level or text that is not JSON
    (which one follows from the hash of the conversation).

    A classification conversation (a "NACE Rev. 2" prompt asking for "exactly these keys:", see
    :mod:`sandbox.classify`) is answered first, with the company's classification; it never reaches the level
    rules, even when the company's text says "level".
    """
    digest = stable_hash(json.dumps(list(messages), ensure_ascii=False))
    classification = find_classify_question(messages)
    if classification is not None:
        return classify_reply(classification, model=model, noise=noise, invalid=invalid, digest=digest)
    tag = f"{digest & 0xFFFFFFFF:08x}"
    last_user = next((text for role, text in reversed(messages) if role == "user"), "")
    if invalid:
        if asks_for_level(last_user) and digest % 2 == 0:
            return json.dumps({"level": INVALID_LEVEL, "reasoning": f"sandbox invalid output {tag}"})
        return f"Sandbox invalid output {tag}: the level is probably high {{"
    if asks_for_level(last_user) and (combined := find_combined_question(messages)) is not None:
        profile, names = combined
        kind = f"noisy at rate {noise:g}" if noise > 0 else "truth"
        return json.dumps(
            {
                name: {
                    "level": model_level(profile, name, model, noise),
                    "reasoning": f"Sandbox {kind} {tag}: not a model judgement.",
                }
                for name in names
            }
        )
    if asks_for_level(last_user):
        question = find_question(messages)
        level = model_level(question.profile, question.criterion, model, noise)
        if noise > 0:
            reasoning = (
                f"Sandbox noisy answer {tag}: {model} answers the truth level but one step off at rate "
                f"{noise:g}; not a model judgement."
            )
        else:
            reasoning = f"Sandbox truth {tag}: the deterministic truth level for this question; not a model judgement."
        return json.dumps({"level": level, "reasoning": reasoning})
    return f"Sandbox reply {tag}: deterministic placeholder text, not a model answer."


# --- Parallel task output --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Company:
    """Who a Parallel task input is about, as far as the sandbox can tell."""

    name: str
    domain: str


_NAME_KEYS = ("company_name", "name", "company", "organization", "organisation")
_SITE_KEYS = ("website", "url", "domain", "company_website", "homepage", "site")


def _domain_of(text: str) -> str:
    url = _URL.search(text)
    if url:
        host = urlparse(url.group(0)).hostname or ""
    else:
        found = _DOMAIN.search(text)
        host = found.group(0) if found else ""
    host = host.lower()
    return host[4:] if host.startswith("www.") else host


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "company"


def describe_company(task_input: Any) -> Company:
    """Find the company name and domain in a Parallel input (a text or an object with usual key names)."""
    name = ""
    site = ""
    if isinstance(task_input, dict):
        name = next((str(task_input[k]) for k in _NAME_KEYS if task_input.get(k)), "")
        site = next((str(task_input[k]) for k in _SITE_KEYS if task_input.get(k)), "")
        text = json.dumps(task_input, ensure_ascii=False, sort_keys=True)
    else:
        text = str(task_input)
    domain = _domain_of(site) or _domain_of(text)
    if not name:
        stripped = _URL.sub("", text).strip(" \t\n:,;-")
        name = stripped[:60] if stripped and not isinstance(task_input, dict) else ""
    if not name:
        name = domain.split(".")[0].replace("-", " ").title() if domain else "Unknown company"
    if not domain:
        domain = f"{_slug(name)}.example"
    return Company(name=name, domain=domain)


class SchemaFiller:
    """Builds a value for a JSON Schema, deterministically from the company and the field path.

    Supports what generated schemas (pydantic, hand-written) use: objects, arrays, strings with formats,
    numbers, booleans, enums/const (first value), ``anyOf``/``oneOf`` (first non-null branch), ``allOf`` and
    local ``$ref``s into ``$defs``/``definitions``.
    """

    def __init__(self, root: dict[str, Any], company: Company) -> None:
        self.root = root
        self.company = company

    def fill(self, schema: Any, field: str = "output", depth: int = 0) -> Any:
        if not isinstance(schema, dict) or depth > MAX_SCHEMA_DEPTH:
            return None
        schema = self._resolve(schema)
        if "const" in schema:
            return schema["const"]
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            return schema["enum"][0]
        for combinator in ("anyOf", "oneOf"):
            options = schema.get(combinator)
            if isinstance(options, list) and options:
                non_null = [o for o in options if not (isinstance(o, dict) and o.get("type") == "null")]
                return self.fill((non_null or options)[0], field, depth + 1)
        if isinstance(schema.get("allOf"), list):
            merged: dict[str, Any] = {}
            for part in schema["allOf"]:
                if isinstance(part, dict):
                    merged.update(self._resolve(part))
            return self.fill(merged, field, depth + 1)
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "null")
        if kind is None:
            kind = "object" if "properties" in schema else "string"
        return self._fill_type(str(kind), schema, field, depth)

    def _resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        for _ in range(MAX_SCHEMA_DEPTH):
            ref = schema.get("$ref")
            if not isinstance(ref, str) or not ref.startswith("#/"):
                return schema
            target: Any = self.root
            for part in ref[2:].split("/"):
                target = target.get(part) if isinstance(target, dict) else None
            if not isinstance(target, dict):
                return {}
            schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
        return schema

    def _fill_type(self, kind: str, schema: dict[str, Any], field: str, depth: int) -> Any:
        digest = stable_hash(self.company.domain, field)
        if kind == "object":
            properties = schema.get("properties")
            if not isinstance(properties, dict):
                return {}
            return {name: self.fill(sub, name, depth + 1) for name, sub in properties.items()}
        if kind == "array":
            count = max(int(schema.get("minItems", 0)), min(2, int(schema.get("maxItems", 2))))
            items = schema.get("items", {"type": "string"})
            return [self.fill(items, f"{field} {i + 1}", depth + 1) for i in range(count)]
        if kind == "integer":
            low = int(schema.get("minimum", 0))
            high = int(schema.get("maximum", max(low, 100)))
            return low + digest % (high - low + 1)
        if kind == "number":
            low_f = float(schema.get("minimum", 0.0))
            high_f = float(schema.get("maximum", max(low_f, 100.0)))
            return round(low_f + (high_f - low_f) * (digest % 1000) / 999, 2)
        if kind == "boolean":
            return digest % 2 == 0
        if kind == "null":
            return None
        return self._string(schema, field)

    def _string(self, schema: dict[str, Any], field: str) -> str:
        fmt = str(schema.get("format", ""))
        lowered = field.lower()
        if fmt == "email" or (lowered.endswith("email") and "body" not in lowered):
            value = f"sandbox@{self.company.domain}"
        elif fmt in ("uri", "url") or any(word in lowered for word in ("url", "website", "link")):
            value = f"https://{self.company.domain}/sandbox"
        elif fmt == "date":
            value = "2026-01-01"
        elif fmt == "date-time":
            value = "2026-01-01T00:00:00Z"
        else:
            label = field.replace("_", " ").strip()
            value = f"Sandbox {label} for {self.company.name}"
        max_length = schema.get("maxLength")
        return value[:max_length] if isinstance(max_length, int) else value


def schema_content(json_schema: dict[str, Any], company: Company, *, invalid: bool = False) -> Any:
    """Content following ``json_schema``; ``invalid`` drops the required fields (what a broken run
    returns)."""
    content = SchemaFiller(json_schema, company).fill(json_schema)
    if invalid and isinstance(content, dict):
        required = [k for k in json_schema.get("required", []) if k in content] or list(content)[:1]
        content = {k: v for k, v in content.items() if k not in required}
    return content


def basis_for(fields: list[str], company: Company) -> list[dict[str, Any]]:
    """Parallel's per-field ``basis``: reasoning and citations (pointing at the company's own site)."""
    return [
        {
            "field": name,
            "reasoning": f"Sandbox: {name} generated deterministically from the input, not researched.",
            "citations": [
                {
                    "url": f"https://{company.domain}/",
                    "title": f"{company.name} (sandbox)",
                    "excerpts": [f"Sandbox excerpt about {company.name}."],
                }
            ],
            "confidence": "high",
        }
        for name in fields
    ]
