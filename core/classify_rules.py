"""The deterministic local rules of ``reclassify`` in local mode: no API, no cost, thousands of companies a second.

:func:`classify` reads four fields of a company (NACE code, industry, activity description, name) and returns
a :class:`Classification` in the taxonomy of :mod:`core.taxonomy`.  The same input always gives the same
output (no randomness, no clock, no set iteration), so a rerun changes nothing and local mode needs no
history of *why* beyond the ``reasons`` it returns.

**Sector and subsector**, in this order:

1. a NACE code that parses (:func:`core.taxonomy.parse_nace`, any usual spelling) gives the section and the
   division: ``confidence="code"``.  A bare section (``"J"``) takes its division from the keywords below when
   one of the section's keywords occurs, else leaves ``subsector`` None.
2. otherwise the keyword rules of :mod:`core.classify_keywords`, over the industry, then the activity, then
   the name: the first text with a keyword decides, and in it the *first* keyword (descriptions name what a
   company is before whom it serves: "A craft bakery ... for hotels and restaurants"); at one position a
   longer phrase beats a single word.  Keywords in a customer clause of the activity ("for ...", "serving
   ...", to the end of the sentence) count last, after the name's.  A keyword that places only a section
   ("manufactures") takes its division from the first later keyword of that section, if any:
   ``confidence="text"``.
3. nothing: ``sector`` and ``subsector`` None, ``confidence="none"``.

**Business model**, the first rule that applies (keywords over all the text, whole words, case-insensitive but
for acronyms such as B2B):

1. "B2B2C", or businesses *and* consumers/households served together → ``B2B2C``;
2. "marketplace", "two-sided", "platform connecting buyers ..." → ``marketplace``;
3. section O (public administration) always, section P (education) when the text says public/state/municipal/
   government-funded school, university ..., any section when it says government-/state-/municipally owned
   → ``public sector``;
4. an explicit "B2B" / "business-to-business" → ``B2B``;
5. a consumer-facing division (47 retail, 55 accommodation, 56 food service, 92 gambling, 93 sport and
   recreation, 95 repair of personal goods, 96 personal services) → ``B2C``;
6. consumer words (consumers, households, shoppers, homeowners, patients, tourists, families, private or
   retail customers, webshop ...) → ``B2C``;
7. otherwise ``B2B`` (most companies in a B2B database sell to businesses), or None when the company has no
   NACE code and no text at all.

Changing any rule or keyword changes classifications: bump :data:`core.taxonomy.TAXONOMY_VERSION`.

:func:`input_text_sha256` hashes exactly the four fields :func:`classify` reads, so a company whose input text
changed since its classification is outdated.  Stdlib only; the regexes are compiled once, at import.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal, NamedTuple

from core.classify_keywords import BUSINESS_MODEL_RULES, SECTOR_RULES
from core.taxonomy import parse_nace

__all__ = ["CONSUMER_DIVISIONS", "Classification", "Confidence", "classify", "input_text_sha256"]

Confidence = Literal["code", "text", "none"]

#: divisions whose companies sell to consumers as a rule (business-model rule 5)
CONSUMER_DIVISIONS: Final = frozenset({"47", "55", "56", "92", "93", "95", "96"})


@dataclass(frozen=True, slots=True)
class Classification:
    """What the local rules make of one company, and why (``reasons``: short, human-readable, in order)."""

    sector: str | None
    subsector: str | None
    business_model: str | None
    confidence: Confidence
    reasons: tuple[str, ...]


# ---------------------------------------------------------------------------------------------------------------
# The compiled rules
# ---------------------------------------------------------------------------------------------------------------


def _fragment(pattern: str) -> str:
    """A keyword fragment as regex: a space matches any run of spaces and hyphens."""
    return pattern.replace(" ", r"[\s-]+")


def _words(pattern: str) -> int:
    return pattern.count(" ") + 1


class _Keyword(NamedTuple):
    section: str
    division: str | None


def _sector_regex() -> tuple[re.Pattern[str], tuple[_Keyword, ...]]:
    """One alternation of every keyword, one capturing group each (its index names the rule).

    Phrases go before single words (stable otherwise): at one position Python's regex takes the first
    alternative that matches, so "agricultural lending" (K) wins over "agricultural" (A).
    """
    entries = [(section, division, f) for section, division, fragments in SECTOR_RULES for f in fragments]
    entries.sort(key=lambda entry: -_words(entry[2]))
    by_initial: dict[str, list[str]] = {}
    for _, _, fragment in entries:
        by_initial.setdefault(_initial(fragment), []).append(f"({_fragment(fragment)})")
    # Alternatives that can match at one position share their first letter: a lookahead on it skips the other
    # letters' alternatives at once (sre tries alternatives one by one; this makes the search ~10x faster).
    # The group numbers follow the text of the pattern, so ``keywords`` is in that order too.
    order = [entry for initial in by_initial for entry in entries if _initial(entry[2]) == initial]
    alternatives = "|".join(
        (f"(?={re.escape(initial)})" if initial else "") + f"(?:{'|'.join(group)})"
        for initial, group in by_initial.items()
    )
    keywords = tuple(_Keyword(section, division) for section, division, _ in order)
    return re.compile(rf"\b(?:{alternatives})\b", re.IGNORECASE), keywords


def _initial(fragment: str) -> str:
    """The letter every match of ``fragment`` starts with (lower case), or "" when that is not plain to see."""
    text = fragment.removeprefix("(?-i:")
    return text[0].lower() if text[:1].isalpha() else ""


def _business_model_regex() -> tuple[re.Pattern[str], tuple[str, ...]]:
    """One alternation of every business-model keyword, one capturing group each (its index names the kind).

    The same alternatives in the same order as one named group per kind, split by first letter behind a
    lookahead as in :func:`_sector_regex` (about 6x faster: this scan was the slowest step of a local reclassify);
    alternatives whose first letter is not plain keep their place between the letter groups.
    """
    entries = [
        (kind, fragment)
        for kind, fragments in BUSINESS_MODEL_RULES
        for fragment in sorted(fragments, key=_words, reverse=True)
    ]
    by_initial: dict[str, list[tuple[str, str]]] = {}
    for kind, fragment in entries:
        by_initial.setdefault(_initial(fragment), []).append((kind, fragment))
    order = [entry for group in by_initial.values() for entry in group]
    alternatives = "|".join(
        (f"(?={re.escape(initial)})" if initial else "") + f"(?:{'|'.join(f'({_fragment(f)})' for _, f in group)})"
        for initial, group in by_initial.items()
    )
    return re.compile(rf"\b(?:{alternatives})\b", re.IGNORECASE), tuple(kind for kind, _ in order)


_SECTOR_RE, _KEYWORDS = _sector_regex()
_BUSINESS_MODEL_RE, _BUSINESS_MODEL_KINDS = _business_model_regex()
_FIELDS: Final = ("industry", "activity", "name")
#: whom a company serves, to the end of its sentence: "for retailers across Europe", "serving the steel industry"
_CUSTOMER_CLAUSE: Final = re.compile(r"\b(?:for|serving)\b[^.;]*", re.IGNORECASE)


class _Hit(NamedTuple):
    section: str
    division: str | None
    keyword: str
    field: str


def _first_keyword(texts: Sequence[tuple[str, str]], section: str | None, need_division: bool) -> _Hit | None:
    """The first keyword of the first text that has one (of ``section`` only, with a division if asked).

    A keyword in a customer clause ("... for hotels and restaurants", "serving the steel industry") names whom
    the company serves, not what it is: it counts only when no later text (the name) has a keyword either.
    """
    fallback: _Hit | None = None
    for field, text in texts:
        clauses = [match.span() for match in _CUSTOMER_CLAUSE.finditer(text)] if field == "activity" else []
        for match in _SECTOR_RE.finditer(text):
            keyword = _KEYWORDS[match.lastindex - 1]  # type: ignore[operator]  # a match always has a group
            if section is not None and keyword.section != section:
                continue
            if need_division and keyword.division is None:
                continue
            hit = _Hit(keyword.section, keyword.division, match.group(), field)
            if not any(start <= match.start() < end for start, end in clauses):
                return hit
            if fallback is None:
                fallback = hit
    return fallback


def _from_keywords(texts: Sequence[tuple[str, str]], reasons: list[str]) -> tuple[str | None, str | None]:
    """Sector and subsector from the keyword rules (rule 2), with their reasons."""
    hit = _first_keyword(texts, None, False)
    if hit is None:
        reasons.append("no usable NACE code and no keyword: sector unknown")
        return None, None
    reasons.append(f"sector {hit.section} from keyword {hit.keyword!r} in {hit.field}")
    if hit.division is not None:
        reasons.append(f"subsector {hit.division} from keyword {hit.keyword!r} in {hit.field}")
        return hit.section, hit.division
    refined = _first_keyword(texts, hit.section, True)
    if refined is None:
        return hit.section, None
    reasons.append(f"subsector {refined.division} from keyword {refined.keyword!r} in {refined.field}")
    return hit.section, refined.division


def _business_model(sector: str | None, subsector: str | None, text: str, reasons: list[str]) -> str | None:
    """The business model (rules 1-7 of the module docstring), with its reason."""
    found: dict[str, str] = {}
    for match in _BUSINESS_MODEL_RE.finditer(text):
        found.setdefault(_BUSINESS_MODEL_KINDS[match.lastindex - 1], match.group())  # type: ignore[operator]
    if "b2b2c" in found:
        reasons.append(f"business model B2B2C: {found['b2b2c']!r}")
        return "B2B2C"
    if "marketplace" in found:
        reasons.append(f"business model marketplace: {found['marketplace']!r}")
        return "marketplace"
    if sector == "O":
        reasons.append("business model public sector: section O (public administration)")
        return "public sector"
    if sector == "P" and "public_education" in found:
        reasons.append(f"business model public sector: education, {found['public_education']!r}")
        return "public sector"
    if "public_owned" in found:
        reasons.append(f"business model public sector: {found['public_owned']!r}")
        return "public sector"
    if "b2b" in found:
        reasons.append(f"business model B2B: {found['b2b']!r}")
        return "B2B"
    if subsector in CONSUMER_DIVISIONS:
        reasons.append(f"business model B2C: division {subsector} sells to consumers")
        return "B2C"
    if "consumer" in found:
        reasons.append(f"business model B2C: {found['consumer']!r}")
        return "B2C"
    if sector is None and not text:
        return None
    reasons.append("business model B2B: the default")
    return "B2B"


# ---------------------------------------------------------------------------------------------------------------
# The API
# ---------------------------------------------------------------------------------------------------------------


def classify(nace_code: str | None, industry: str | None, activity: str | None, name: str | None) -> Classification:
    """The local classification of a company from its NACE code, industry, activity description and name.

    See the module docstring for the rules and their order; ``reasons`` says which applied.
    """
    reasons: list[str] = []
    sector: str | None
    subsector: str | None
    texts = [(field, text) for field, text in zip(_FIELDS, (industry, activity, name), strict=True) if text]
    confidence: Confidence
    parsed = parse_nace(nace_code)
    if parsed is not None:
        sector, subsector = parsed
        confidence = "code"
        if subsector is not None:
            reasons.append(f"sector {sector}, subsector {subsector} from nace_code {nace_code!r}")
        else:
            reasons.append(f"sector {sector} from nace_code {nace_code!r}")
            hit = _first_keyword(texts, sector, True)
            if hit is not None:
                subsector = hit.division
                reasons.append(f"subsector {subsector} from keyword {hit.keyword!r} in {hit.field}")
    else:
        if nace_code is not None and nace_code.strip():
            reasons.append(f"nace_code {nace_code!r} is not a NACE Rev. 2 code: keywords instead")
        sector, subsector = _from_keywords(texts, reasons)
        confidence = "none" if sector is None else "text"
    business_model = _business_model(sector, subsector, "\n".join(text for _, text in texts), reasons)
    return Classification(sector, subsector, business_model, confidence, tuple(reasons))


def _normalised(value: str | None) -> str:
    """Stripped, every run of whitespace one space; None and blank are both ``""``."""
    return " ".join(value.split()) if value else ""


def input_text_sha256(nace_code: str | None, industry: str | None, activity: str | None, name: str | None) -> str:
    """The SHA-256 (hex) of exactly the fields :func:`classify` reads, whitespace-normalised.

    Only a change of content changes it: surrounding or repeated whitespace and None vs blank do not (they do not
    change the classification either).  The fields are hashed as a JSON array, so moving text from one field to
    another changes the hash.
    """
    values = [_normalised(value) for value in (nace_code, industry, activity, name)]
    payload = json.dumps(values, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()
