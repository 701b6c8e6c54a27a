"""Country and NACE Rev. 2 codes: a row's ``country`` as ISO 3166 alpha-2, its ``nace_code`` in dotted form.

:func:`country_code` accepts alpha-2, alpha-3 and (folded like names, :func:`~core.name_keys._fold`) country
names; :func:`check_nace` accepts the usual spellings of a NACE Rev. 2 section, division, group or class.
Countries and NACE codes repeat, so their checks are cached (``lru_cache``).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Final

import pycountry

from core.company_checks import clean_text
from core.name_keys import _fold
from core.taxonomy import NACE_FORMAT, NaceCodeError, read_nace

__all__ = ["InvalidValueError", "check_nace", "country_code"]


class InvalidValueError(ValueError):
    """A value that cannot be stored (raised by :func:`check_nace`); the message is the row's reason."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


#: how much of a value a reason shows
_SHOWN_CHARS: Final = 100


def _shown(value: str) -> str:
    """``value`` quoted for a reason, cut to 100 characters."""
    if len(value) > _SHOWN_CHARS:
        value = value[: _SHOWN_CHARS - 1] + "…"
    return f"'{value}'"


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


def country_spellings(value: str) -> list[str]:
    """``value`` and the other ways a stored country may spell the same country: alpha-2 and English names.

    Imports store alpha-2 codes; rows written another way may hold ``Netherlands``.  A filter on countries
    matches both, whichever spelling it was given.  An unknown country is returned as given.
    """
    code = country_code(value)
    if code is None:
        return [value]
    country = pycountry.countries.get(alpha_2=code)
    names = [getattr(country, attr, None) for attr in ("name", "common_name")] if country is not None else []
    return list(dict.fromkeys([value, code, *(n for n in names if n)]))


# ---------------------------------------------------------------------------------------------------------------
# NACE Rev. 2
# ---------------------------------------------------------------------------------------------------------------

# The sections, divisions and the grammar of a code live in :mod:`core.taxonomy` (stdlib only), which the
# classification reads too: a code an import stores is a code the classification can read.


@lru_cache(maxsize=4096)
def _nace(code: str) -> tuple[str | None, str | None]:
    """(normalised code, None) or (None, reason); ``code`` is cleaned and trimmed."""
    try:
        return read_nace(code).code, None
    except NaceCodeError as error:
        if error.kind == "format":
            return None, f"nace_code {_shown(code)} is not a NACE Rev. 2 code ({NACE_FORMAT})"
        return None, f"nace_code {_shown(code)}: {error}"


def check_nace(code: str) -> str | None:
    """The NACE Rev. 2 code in its stored form, None when ``code`` is blank; raises InvalidValueError otherwise.

    Accepted: a section letter (``C``), a division ``NN``, group ``NN.N`` or class ``NN.NN``, the last two also
    without the dot (``1011`` → ``10.11``, ``101`` → ``10.1``), with an optional leading section letter that must be
    the division's (``C10.11``, ``C 10.11`` and ``C.10.11`` → ``10.11``).  The division must exist in NACE Rev. 2;
    groups and classes are checked for shape only.  Leading zeros lost by a spreadsheet (``1.11``) are not guessed
    back.  The grammar is :func:`core.taxonomy.read_nace`'s, shared with the classification.
    """
    text = clean_text(code).strip()
    if not text:
        return None
    value, reason = _nace(text)
    if reason is not None:
        raise InvalidValueError(reason)
    return value
