"""One row of an import file → a normalised company (with its duplicate-detection keys) or a rejection.

The importer has already mapped the file's columns to our field names; :func:`normalise_row` takes one such row
(field → raw string or None) and returns a :class:`NormalisedCompany` ready to write, or a :class:`RejectedRow`
whose reason says, in a short human sentence per problem, what to fix.  Pure: no Prefect, no database, no network.
Name keys, domains and country/NACE codes are worked out in :mod:`core.name_keys`, :mod:`core.company_domains`
and :mod:`core.company_codes`; their public names are re-exported here.

Values
    Every text value goes through :func:`~core.company_checks.clean_text` (control characters and NUL out, NFC)
    and is trimmed; an empty value is None.  The name's inner whitespace is collapsed to single spaces.  A value
    longer than its ``companies`` column (limits read from :mod:`core.schema`) rejects the row: nothing is
    truncated silently.  A cell over :data:`MAX_CELL_CHARS` is rejected before it is even cleaned, and its reason
    does not show it.  Reasons never show more than 100 characters of a value.  Websites must pass
    :func:`~core.company_checks.normalise_website` and are stored in its canonical form; countries are stored as
    ISO 3166 alpha-2 (:func:`~core.company_codes.country_code`); NACE codes in their dotted Rev. 2 form
    (:func:`~core.company_codes.check_nace`).

Duplicate detection
    :attr:`NormalisedCompany.dedup_key` is ``d:<domain>`` when the website identifies the company
    (:func:`~core.company_domains.company_domain`), else ``n:<name_key>|<country>``
    (:func:`~core.name_keys.name_key`).

Speed
    An import must sustain 20,000 rows/s including its database writes on a small machine, so every field is
    written for a budget of a microsecond or two.  Countries, NACE codes, industries and ownership types repeat,
    so their checks are cached (``lru_cache``, only for cells up to 200 characters so the caches stay small).
    Measured on the 2-core development machine (CPython 3.11, 5,000 rows of ``core.synthetic``, best of 11 runs
    while other work ran): a typical row (name with legal form, website, country, industry, NACE code) takes
    ≈ 36 µs, of which ``normalise_website`` ≈ 21 µs, the PSL lookup (``tldextract``) ≈ 6 µs and everything else
    ≈ 9 µs; a row without a website ≈ 7 µs.  (In a tight loop over one function each costs about half: 12 µs and
    4 µs.)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Final

from core.company_checks import check_name, clean_text, normalise_website
from core.company_codes import InvalidValueError, _nace, _shown, check_nace, country_code
from core.company_domains import (
    SHARED_DOMAINS,
    TENANT_SUFFIXES,
    _company_domain_of_host,
    _host,
    company_domain,
    registrable_domain,
)
from core.errors import InvalidInputError
from core.name_keys import name_key
from core.schema import Company

if TYPE_CHECKING:
    from functools import _lru_cache_wrapper

__all__ = [
    "FIELDS",
    "MAX_ACTIVITY_DESCRIPTION_CHARS",
    "MAX_CELL_CHARS",
    "PRIORITY_MAX",
    "PRIORITY_MIN",
    "SHARED_DOMAINS",
    "TENANT_SUFFIXES",
    "InvalidValueError",
    "NormalisedCompany",
    "RejectedRow",
    "check_nace",
    "company_domain",
    "country_code",
    "name_key",
    "normalise_row",
    "normalise_rows",
    "registrable_domain",
]


# ---------------------------------------------------------------------------------------------------------------
# Limits
# ---------------------------------------------------------------------------------------------------------------


def _column_length(column: str) -> int:
    length = getattr(Company.__table__.c[column].type, "length", None)
    if not isinstance(length, int):  # pragma: no cover - a schema change this module must follow
        raise TypeError(f"companies.{column} has no length limit")
    return length


#: the fields a row may hold (our names, after column mapping)
FIELDS: Final = (
    "name",
    "website",
    "industry",
    "nace_code",
    "country",
    "activity_description",
    "ownership_type",
    "priority",
)
_FIELD_SET: Final = frozenset(FIELDS)

_NAME_MAX: Final = _column_length("name")
_WEBSITE_MAX: Final = _column_length("website")
#: ``activity_description`` is TEXT in the database; longer than this is not a description but pasted garbage
MAX_ACTIVITY_DESCRIPTION_CHARS: Final = 20_000
#: a cell longer than this is rejected unread (not cleaned, not shown in the reason)
MAX_CELL_CHARS: Final = 100_000
PRIORITY_MIN: Final = -1000
PRIORITY_MAX: Final = 1000


def _too_long(field: str, length: int, limit: int) -> str:
    return f"{field} is {length:,} characters long (at most {limit:,})"


# ---------------------------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NormalisedCompany:
    """A row fit to write: every value cleaned and checked, plus the keys duplicate detection compares."""

    name: str
    website: str | None
    domain: str | None
    industry: str | None
    nace_code: str | None
    country: str | None
    activity_description: str | None
    ownership_type: str | None
    priority: int | None
    #: :func:`name_key` of the name
    name_key: str

    @property
    def dedup_key(self) -> str:
        """``d:<domain>`` when the website identifies the company, else ``n:<name_key>|<country or ''>``."""
        if self.domain is not None:
            return f"d:{self.domain}"
        return f"n:{self.name_key}|{self.country or ''}"

    def fields(self) -> dict[str, Any]:
        """The company columns to write; ``priority`` only when the row gave one (else the column default)."""
        values: dict[str, Any] = {
            "name": self.name,
            "website": self.website,
            "domain": self.domain,
            "name_key": self.name_key,
            "industry": self.industry,
            "nace_code": self.nace_code,
            "country": self.country,
            "activity_description": self.activity_description,
            "ownership_type": self.ownership_type,
        }
        if self.priority is not None:
            values["priority"] = self.priority
        return values


@dataclass(frozen=True, slots=True)
class RejectedRow:
    """A row that cannot be imported: ``reason`` names each problem (``; ``-separated), ``values`` is the raw row."""

    row_number: int
    reason: str
    values: Mapping[str, str | None]


# ---------------------------------------------------------------------------------------------------------------
# Rows
# ---------------------------------------------------------------------------------------------------------------

#: a whole number as text; "7.0" too (a spreadsheet's way of writing 7)
_INTEGER: Final = re.compile(r"[+-]?([0-9]+)(?:\.0*)?")
#: cells up to this long go through the per-field caches; longer ones are checked uncached (the caches stay small)
_CACHED_CHARS: Final = 200

#: a checked cell: (value to store or None, reason or None)
_Cell = tuple[Any, str | None]


def _text_cell(field: str, limit: int) -> _lru_cache_wrapper[_Cell]:
    """The cached check of a short text field whose values repeat (industry, ownership type)."""

    def cell(value: str) -> _Cell:
        text = clean_text(value).strip()
        if len(text) > limit:
            return None, _too_long(field, len(text), limit)
        return text or None, None

    return lru_cache(maxsize=4096)(cell)


_industry_cell: Final = _text_cell("industry", _column_length("industry"))
_ownership_cell: Final = _text_cell("ownership_type", _column_length("ownership_type"))


@lru_cache(maxsize=4096)
def _country_cell(value: str) -> _Cell:
    text = clean_text(value).strip()
    if not text:
        return None, None
    code = country_code(text)
    if code is None:
        return None, f"country {_shown(text)} is not an ISO 3166 country (name, alpha-2 or alpha-3)"
    return code, None


@lru_cache(maxsize=4096)
def _nace_cell(value: str) -> _Cell:
    text = clean_text(value).strip()
    return _nace(text) if text else (None, None)


def _checked(check: _lru_cache_wrapper[_Cell], value: str | None, reasons: list[str]) -> Any:
    """The value ``check`` gives ``value`` (None for None), its reason appended to ``reasons``."""
    if value is None:
        return None
    result, reason = check(value) if len(value) <= _CACHED_CHARS else check.__wrapped__(value)
    if reason is not None:
        reasons.append(reason)
    return result


def _priority(value: str, reasons: list[str]) -> int | None:
    text = value.strip()
    if not text:
        return None
    match = _INTEGER.fullmatch(text)
    if match is None:
        reasons.append(f"priority {_shown(clean_text(text))} is not a whole number")
        return None
    if len(match.group(1)) > 5:  # out of range, and int() of a long digit string is slow
        number = PRIORITY_MAX + 1
    else:
        number = int(text.partition(".")[0])
    if not PRIORITY_MIN <= number <= PRIORITY_MAX:
        reasons.append(f"priority {_shown(text)} is out of range ({PRIORITY_MIN} to {PRIORITY_MAX})")
        return None
    return number


def normalise_row(raw: Mapping[str, str | None], row_number: int) -> NormalisedCompany | RejectedRow:
    """The company a row describes, or the row rejected with every problem found.

    ``raw`` maps our field names (:data:`FIELDS`) to raw strings or None; a missing field is None.  A field name
    outside :data:`FIELDS` is the column mapping's bug, not the row's: it raises ValueError.
    """
    if not _FIELD_SET.issuperset(raw):
        unknown = sorted(str(key) for key in raw if key not in _FIELD_SET)
        raise ValueError(f"unknown fields {unknown}: a row holds only {', '.join(FIELDS)}")
    reasons: list[str] = []
    for field, value in raw.items():
        if value is not None and len(value) > MAX_CELL_CHARS:
            reasons.append(f"{field} is {len(value):,} characters long (a cell holds at most {MAX_CELL_CHARS:,})")
    if reasons:  # never clean (or show) a cell this size
        return RejectedRow(row_number, "; ".join(reasons), dict(raw))
    get = raw.get

    # the name: required, inner whitespace collapsed
    name = get("name")
    if name is not None:
        name = " ".join(clean_text(name).split())
    if check_name(name) is not None or not name:
        reasons.append("name is empty")
        name = ""
    elif len(name) > _NAME_MAX:
        reasons.append(_too_long("name", len(name), _NAME_MAX))

    website = domain = None
    value = get("website")
    if value is not None and (value := clean_text(value).strip()):
        try:
            website = normalise_website(value)
        except InvalidInputError as exc:
            reasons.append(exc.reason.removeprefix("invalid input: "))
        else:
            if len(website) > _WEBSITE_MAX:
                reasons.append(_too_long("website", len(website), _WEBSITE_MAX))
            host = _host(website)
            domain = None if host is None else _company_domain_of_host(host)

    country = _checked(_country_cell, get("country"), reasons)
    nace_code = _checked(_nace_cell, get("nace_code"), reasons)
    industry = _checked(_industry_cell, get("industry"), reasons)
    ownership_type = _checked(_ownership_cell, get("ownership_type"), reasons)

    description = get("activity_description")
    if description is not None:
        description = clean_text(description).strip() or None
        if description is not None and len(description) > MAX_ACTIVITY_DESCRIPTION_CHARS:
            reasons.append(_too_long("activity_description", len(description), MAX_ACTIVITY_DESCRIPTION_CHARS))

    value = get("priority")
    priority = None if value is None else _priority(value, reasons)

    if reasons:
        return RejectedRow(row_number, "; ".join(reasons), dict(raw))
    return NormalisedCompany(
        name=name,
        website=website,
        domain=domain,
        industry=industry,
        nace_code=nace_code,
        country=country,
        activity_description=description,
        ownership_type=ownership_type,
        priority=priority,
        name_key=name_key(name),
    )


def normalise_rows(
    rows: Iterable[Mapping[str, str | None]], first_row_number: int
) -> tuple[list[tuple[int, NormalisedCompany]], list[RejectedRow]]:
    """:func:`normalise_row` over ``rows`` numbered from ``first_row_number``: ((row number, company), rejects)."""
    companies: list[tuple[int, NormalisedCompany]] = []
    rejected: list[RejectedRow] = []
    for row_number, raw in enumerate(rows, first_row_number):
        result = normalise_row(raw, row_number)
        if isinstance(result, RejectedRow):
            rejected.append(result)
        else:
            companies.append((row_number, result))
    return companies, rejected
