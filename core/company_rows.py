"""One row of an import file → a normalised company (with its duplicate-detection keys) or a rejection.

The importer has already mapped the file's columns to our field names; :func:`normalise_row` takes one such row
(field → raw string or None) and returns a :class:`NormalisedCompany` ready to write, or a :class:`RejectedRow`
whose reason says, in a short human sentence per problem, what to fix.  Pure: no Prefect, no database, no network.

Values
    Every text value goes through :func:`~core.company_checks.clean_text` (control characters and NUL out, NFC)
    and is trimmed; an empty value is None.  The name's inner whitespace is collapsed to single spaces.  A value
    longer than its ``companies`` column (limits read from :mod:`core.schema`) rejects the row: nothing is
    truncated silently.  A cell over :data:`MAX_CELL_CHARS` is rejected before it is even cleaned, and its reason
    does not show it.  Reasons never show more than 100 characters of a value.  Websites must pass
    :func:`~core.company_checks.normalise_website` and are stored in its canonical form; countries are stored as
    ISO 3166 alpha-2 (:func:`country_code`); NACE codes in their dotted Rev. 2 form (:func:`check_nace`).

Duplicate detection
    :attr:`NormalisedCompany.dedup_key` is ``d:<domain>`` when the website identifies the company, else
    ``n:<name_key>|<country>``.  The domain is the *registrable* domain (``www.acme.co.uk`` and
    ``shop.acme.co.uk`` are both ``acme.co.uk``), found with ``tldextract`` and the Public Suffix List including
    its private section, so ``acme.wixsite.com`` and ``acme.github.io`` each stay one company's.  A few shared
    hosts do not identify a company (:data:`SHARED_DOMAINS`: social networks, Google Maps/Sites, link shorteners):
    their websites give no domain and the name key decides.  Site builders that give each customer a sub-domain
    but are not on the PSL (:data:`TENANT_SUFFIXES`) keep the customer's label: ``acme.wordpress.com``.
    :func:`name_key` folds what varies between spellings of one name: case, accents, punctuation, ``&``/``and``
    and a trailing legal form (``Acme B.V.``, ``ACME BV`` and ``Acmé, b.v.`` are all ``acme``).

Offline
    The PSL comes from the snapshot inside ``tldextract`` (no download, no disk cache): an import never waits
    on the network, and the same file gives the same keys on every machine with the same package version.

Speed
    An import must sustain 20,000 rows/s including its database writes on a small machine, so every field is
    written for a budget of a microsecond or two.  ``cleanco.basename`` costs ~50 µs a call: instead cleanco's
    own term list is folded like names are and compiled into one trie-shaped regex anchored at the end of the
    folded name (tests check the result against ``cleanco.basename``).  Countries, NACE codes, industries and
    ownership types repeat, so their checks are cached (``lru_cache``, only for cells up to 200 characters so
    the caches stay small).  Measured on the 2-core development machine (CPython 3.11, 5,000 rows of
    ``core.synthetic``, best of 11 runs while other work ran): a typical row (name with legal form, website,
    country, industry, NACE code) takes ≈ 36 µs, of which ``normalise_website`` ≈ 21 µs, the PSL lookup
    (``tldextract``) ≈ 6 µs and everything else ≈ 9 µs; a row without a website ≈ 7 µs.  (In a tight loop over
    one function each costs about half: 12 µs and 4 µs.)
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Final

import pycountry
import tldextract
from cleanco.non_nfkd_map import NON_NFKD_MAP
from cleanco.termdata import terms_by_country, terms_by_type

from core.company_checks import check_name, clean_text, normalise_website
from core.errors import InvalidInputError
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


class InvalidValueError(ValueError):
    """A value that cannot be stored (raised by :func:`check_nace`); the message is the row's reason."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


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
#: folding can lengthen a name (``&`` → ``and``, ``ß`` → ``ss``): the key is cut to its column
_NAME_KEY_MAX: Final = _column_length("name_key")
_WEBSITE_MAX: Final = _column_length("website")
#: ``activity_description`` is TEXT in the database; longer than this is not a description but pasted garbage
MAX_ACTIVITY_DESCRIPTION_CHARS: Final = 20_000
#: a cell longer than this is rejected unread (not cleaned, not shown in the reason)
MAX_CELL_CHARS: Final = 100_000
PRIORITY_MIN: Final = -1000
PRIORITY_MAX: Final = 1000

#: how much of a value a reason shows
_SHOWN_CHARS: Final = 100


def _shown(value: str) -> str:
    """``value`` quoted for a reason, cut to 100 characters."""
    if len(value) > _SHOWN_CHARS:
        value = value[: _SHOWN_CHARS - 1] + "…"
    return f"'{value}'"


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
# Folding (name keys, legal forms, country names)
# ---------------------------------------------------------------------------------------------------------------

#: runs of anything but letters and digits (Unicode-aware; "_" included): one space each
_SEPARATORS: Final = re.compile(r"[\W_]+")
#: apostrophes and dots outside ASCII, removed like their ASCII twins
_UNICODE_DROP: Final = {ord(c): None for c in "\u2019\u2018\u02bc\u00b4\u2024\uff0e"}
_NON_NFKD: Final = str.maketrans(NON_NFKD_MAP)
#: the Combining Diacritical Marks block: what NFKD splits off accented Latin letters
_LATIN_MARKS: Final = re.compile("[\u0300-\u036f]+")


def _fold(text: str) -> str:
    """Caseless, accentless words separated by single spaces: ``Acmé, B.V. & Co`` → ``acme bv and co``.

    Dots and apostrophes vanish (``B.V.`` = ``BV``, ``McDonald's`` = ``McDonalds``), ``&`` is ``and``, every other
    run of punctuation, symbols and whitespace is one space.  Written for speed: plain ``str`` methods settle the
    common case and the regex only runs when punctuation other than dots and apostrophes is left.
    """
    text = text.casefold()
    if not text.isascii():
        text = unicodedata.normalize("NFKD", text)
        if not text.isascii():
            text = _LATIN_MARKS.sub("", text)  # the usual case: Latin letters with accents
            if not text.isascii():
                text = "".join(c for c in text if not unicodedata.combining(c))
                text = text.translate(_NON_NFKD).translate(_UNICODE_DROP).casefold()
    if "&" in text:
        text = text.replace("&", " and ")
    if "." in text:
        text = text.replace(".", "")
    if "'" in text:
        text = text.replace("'", "")
    words = text.split()
    if not "".join(words).isalnum():  # str.isalnum agrees with the regex's \w, bar "_"
        words = _SEPARATORS.sub(" ", text).split()
    return " ".join(words)


def _legal_terms() -> set[str]:
    """cleanco's legal forms (all types and countries), folded the way names are."""
    terms: set[str] = set()
    for group in (terms_by_type, terms_by_country):
        for values in group.values():
            terms.update(_fold(term) for term in values)
    terms.discard("")
    return terms


def _trie_pattern(words: Iterable[str]) -> str:
    """A regex matching exactly ``words``, shaped as a trie so a match attempt costs a few steps, not one per word."""
    root: dict[str, Any] = {}
    for word in words:
        node = root
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}

    def build(node: dict[str, Any]) -> str:
        branches = [re.escape(char) + build(child) for char, child in sorted(node.items()) if char]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        return f"(?:{body})?" if "" in node else body  # optional: a word ends here, longer ones go on

    return build(root)


#: one legal form at the end of a folded name, after at least one other word (so a name never folds to nothing);
#: ``search`` finds the leftmost start, i.e. the longest form (``gmbh and co kg`` before ``kg``)
_LEGAL_FORM: Final = re.compile(" (?:" + _trie_pattern(_legal_terms()) + ")$")


def name_key(name: str) -> str:
    """The name as duplicate detection compares it: :func:`_fold` without one trailing legal form.

    ``Acme B.V.``, ``ACME BV``, ``Acme, b.v.`` and ``Acmé B.V.`` are all ``acme``; ``Smith & Sons Ltd`` and ``Smith
    and Sons Limited`` are ``smith and sons``.  The legal forms are cleanco's; like ``cleanco.basename`` one form
    is removed from the end only (``Acme Holding B.V.`` is ``acme holding``).  A name that is only a legal-form
    word keeps it (``Holding``, ``Company``), and a name without letters or digits keys on its casefolded self.
    The key is cut to the ``name_key`` column's length (folding can make it longer than the name).
    """
    key = _fold(name)
    if " " in key:
        match = _LEGAL_FORM.search(key)
        if match is not None:
            key = key[: match.start()]
    if not key:  # only punctuation: still a key that tells such names apart
        key = " ".join(name.casefold().split())
    return key if len(key) <= _NAME_KEY_MAX else key[:_NAME_KEY_MAX].rstrip()


# ---------------------------------------------------------------------------------------------------------------
# Domains
# ---------------------------------------------------------------------------------------------------------------

#: registrable domains whose sites belong to many companies, one page each (in the path): no company's domain.
#: Social networks, Google Maps/Sites/Business pages and link shorteners, as scraped company lists are full of them.
SHARED_DOMAINS: Final = frozenset(
    {
        "facebook.com",
        "instagram.com",
        "linkedin.com",
        "twitter.com",
        "x.com",
        "youtube.com",
        "tiktok.com",
        "xing.com",
        "google.com",
        "g.page",
        "goo.gl",
        "bit.ly",
        "linktr.ee",
    }
)
#: site builders that give each customer a sub-domain but are not (public or private) suffixes on the Public
#: Suffix List: the customer's label is kept (``acme.wordpress.com``).  Hosts the PSL already lists as private
#: suffixes (``wixsite.com``, ``github.io``, ``blogspot.com``, ``myshopify.com``, ``netlify.app``) need no entry.
TENANT_SUFFIXES: Final = frozenset(
    {
        "wordpress.com",
        "squarespace.com",
        "weebly.com",
        "jimdofree.com",
        "tumblr.com",
        "business.site",
        "godaddysites.com",
    }
)

_extractor: tldextract.TLDExtract | None = None
_extractor_lock = threading.Lock()


def _tld_extractor() -> tldextract.TLDExtract:
    """The offline PSL extractor, built on first use (one per process; thread-safe)."""
    global _extractor
    extractor = _extractor
    if extractor is None:
        with _extractor_lock:
            extractor = _extractor
            if extractor is None:
                # no suffix list URLs and no cache directory: the snapshot bundled with the package, never the network
                extractor = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None, include_psl_private_domains=True)
                extractor.extract_str("example.com")  # load the list now, under the lock (tldextract does not lock)
                _extractor = extractor
    return extractor


def _host(normalised: str) -> str | None:
    """The host of a :func:`normalise_website` result, None when it is an IP address."""
    start = normalised.index("://") + 3
    end = normalised.find("/", start)
    host = normalised[start:] if end == -1 else normalised[start:end]
    if host.startswith("["):  # IPv6
        return None
    host = host.partition(":")[0]  # the port
    if host[-1:].isdigit():  # normalise_website refuses numeric top-level domains: this is an IPv4 address
        return None
    return host


def _registrable(host: str) -> str | None:
    return _tld_extractor().extract_str(host).top_domain_under_public_suffix or None


def _company_domain_of_host(host: str) -> str | None:
    domain = _registrable(host)
    if domain is None or domain in SHARED_DOMAINS:
        return None
    if domain in TENANT_SUFFIXES:
        label = host[: -len(domain)].rstrip(".").rpartition(".")[2]
        return None if label in ("", "www") else f"{label}.{domain}"
    return domain


def registrable_domain(website: str) -> str | None:
    """The registrable domain of a website (raw or normalised): ``https://shop.acme.co.uk/x`` → ``acme.co.uk``.

    The PSL's private suffixes count (``acme.github.io`` is its own domain); the domain is ASCII (IDNA), lowercase.
    None for an IP address, or a host that is itself a public suffix or under no known suffix.  Raises
    :class:`~core.errors.InvalidInputError` when the website is unfit (see ``normalise_website``).
    """
    host = _host(normalise_website(website))
    return None if host is None else _registrable(host)


def company_domain(website: str) -> str | None:
    """The domain that identifies the company behind a website, for duplicate detection.

    :func:`registrable_domain`, except None for :data:`SHARED_DOMAINS` and the customer's sub-domain for
    :data:`TENANT_SUFFIXES`.  Raises :class:`~core.errors.InvalidInputError` when the website is unfit.
    """
    host = _host(normalise_website(website))
    return None if host is None else _company_domain_of_host(host)


# ---------------------------------------------------------------------------------------------------------------
# Countries
# ---------------------------------------------------------------------------------------------------------------

#: names pycountry does not know (folded like country names), common in company data: English short forms and
#: former names, and the European countries' own names.  Kosovo (``XK``) is deliberately absent: not ISO 3166.
_COUNTRY_ALIASES: Final = {
    "uk": "GB",
    "great britain": "GB",
    "britain": "GB",
    "england": "GB",
    "scotland": "GB",
    "wales": "GB",
    "northern ireland": "GB",
    "america": "US",
    "united states": "US",
    "uae": "AE",
    "holland": "NL",
    "russia": "RU",
    "turkey": "TR",
    "ivory coast": "CI",
    "macedonia": "MK",
    "cape verde": "CV",
    "swaziland": "SZ",
    "burma": "MM",
    "vatican": "VA",
    "brunei": "BN",
    "macau": "MO",
    "palestine": "PS",
    "deutschland": "DE",
    "nederland": "NL",
    "belgie": "BE",
    "belgique": "BE",
    "osterreich": "AT",
    "schweiz": "CH",
    "suisse": "CH",
    "svizzera": "CH",
    "espana": "ES",
    "italia": "IT",
    "sverige": "SE",
    "norge": "NO",
    "danmark": "DK",
    "suomi": "FI",
    "polska": "PL",
    "cesko": "CZ",
    "ceska republika": "CZ",
    "magyarorszag": "HU",
    "eire": "IE",
    "hellas": "GR",
}


@lru_cache(maxsize=1)
def _country_index() -> dict[str, str]:
    """Folded alpha-2, alpha-3, names, official and common names (pycountry), and the aliases → alpha-2."""
    index: dict[str, str] = {}
    for country in pycountry.countries:
        code: str = country.alpha_2
        for attribute in ("name", "official_name", "common_name"):
            value = getattr(country, attribute, None)
            if value:
                index.setdefault(_fold(value), code)
        index[country.alpha_2.lower()] = code
        index[country.alpha_3.lower()] = code
    for alias, code in _COUNTRY_ALIASES.items():
        index.setdefault(alias, code)
    return index


@lru_cache(maxsize=4096)
def country_code(value: str) -> str | None:
    """The ISO 3166 alpha-2 code of a country given as alpha-2, alpha-3 or name; None when unknown.

    Case, accents, punctuation and a leading "the" do not matter (``nl``, ``NLD``, ``the Netherlands``,
    ``U.K.``, ``Côte d'Ivoire``/``Cote d'Ivoire``); exact names only (no fuzzy matching: a typo is reported, not
    guessed).  Numeric codes are not accepted.
    """
    key = _fold(value)
    if key.startswith("the "):
        key = key[4:]
    return _country_index().get(key)


# ---------------------------------------------------------------------------------------------------------------
# NACE Rev. 2
# ---------------------------------------------------------------------------------------------------------------

#: NACE Rev. 2 sections and their divisions
_NACE_SECTIONS: Final = {
    "A": (1, 3),
    "B": (5, 9),
    "C": (10, 33),
    "D": (35, 35),
    "E": (36, 39),
    "F": (41, 43),
    "G": (45, 47),
    "H": (49, 53),
    "I": (55, 56),
    "J": (58, 63),
    "K": (64, 66),
    "L": (68, 68),
    "M": (69, 75),
    "N": (77, 82),
    "O": (84, 84),
    "P": (85, 85),
    "Q": (86, 88),
    "R": (90, 93),
    "S": (94, 96),
    "T": (97, 98),
    "U": (99, 99),
}
_NACE_DIVISIONS: Final = {
    f"{division:02d}": section
    for section, (first, last) in _NACE_SECTIONS.items()
    for division in range(first, last + 1)
}
#: an optional section letter, the two-digit division, then an optional group digit and class digit, with or
#: without the dot (``C10.11``, ``10.11``, ``1011``, ``10.1``, ``101``, ``10``); spaces are removed first
_NACE: Final = re.compile(r"([A-U])?([0-9]{2})(?:\.?([0-9]{1,2}))?")
_NACE_FORMAT: Final = "a section letter A–U, or NN, NN.N or NN.NN"


@lru_cache(maxsize=4096)
def _nace(code: str) -> tuple[str | None, str | None]:
    """(normalised code, None) or (None, reason); ``code`` is cleaned and trimmed."""
    compact = "".join(code.split()).upper()
    if len(compact) == 1 and compact in _NACE_SECTIONS:
        return compact, None
    match = _NACE.fullmatch(compact)
    if match is None:
        return None, f"nace_code {_shown(code)} is not a NACE Rev. 2 code ({_NACE_FORMAT})"
    letter, division, rest = match.groups()
    section = _NACE_DIVISIONS.get(division)
    if section is None:
        return None, f"nace_code {_shown(code)}: {division} is not a NACE Rev. 2 division"
    if letter is not None and letter != section:
        return None, f"nace_code {_shown(code)}: division {division} is in section {section}, not {letter}"
    if rest is None:
        return division, None
    return f"{division}.{rest}", None


def check_nace(code: str) -> str | None:
    """The NACE Rev. 2 code in its stored form, None when ``code`` is blank; raises InvalidValueError otherwise.

    Accepted: a section letter (``C``), a division ``NN``, group ``NN.N`` or class ``NN.NN``, the last two also
    without the dot (``1011`` → ``10.11``, ``101`` → ``10.1``), with an optional leading section letter that must be
    the division's (``C10.11`` and ``C 10.11`` → ``10.11``).  The division must exist in NACE Rev. 2; groups and
    classes are checked for shape only.  Leading zeros lost by a spreadsheet (``1.11``) are not guessed back.
    """
    text = clean_text(code).strip()
    if not text:
        return None
    value, reason = _nace(text)
    if reason is not None:
        raise InvalidValueError(reason)
    return value


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
