"""The classification taxonomy that ships in the domain: NACE Rev. 2 sections and divisions, business models.

A company's classification is three fields, each validated here:

* ``sector``: the NACE Rev. 2 section, a letter ``A``..``U`` (:data:`SECTIONS`);
* ``subsector``: the NACE Rev. 2 division, two digits (:data:`DIVISIONS`), which must lie in the sector when
  both are given;
* ``business_model``: one of :data:`BUSINESS_MODELS`.

**The version.**  Each classified company records :data:`TAXONOMY_VERSION`; a company classified under another
version is *outdated* and a reclassify without ``force`` picks it up again.  So **any change to the data or the
rules here** (a title, a division range, a business model, what :func:`check_classification` accepts) **or to
the local classification rules of** :mod:`core.classify_rules` (keywords, business-model rules: local mode
records ``local-rules-<version>`` as its model) **must bump the version**; otherwise companies keep a
classification the current rules would not give, and nothing says so.

The NACE grammar (:func:`read_nace`) also serves imports (:func:`core.company_codes.check_nace`), so a code an
import stores is a code the classification can read.  Stdlib only: the data is the public standard (Eurostat,
NACE Rev. 2, 2008), not a download.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType
from typing import Final, Literal

__all__ = [
    "BUSINESS_MODELS",
    "CLASSIFICATION_FIELDS",
    "DIVISIONS",
    "NACE_FORMAT",
    "SECTIONS",
    "TAXONOMY_VERSION",
    "NaceCode",
    "NaceCodeError",
    "Section",
    "check_classification",
    "is_valid",
    "normalise_value",
    "parse_nace",
    "read_nace",
    "section_of_division",
]

#: NACE Rev. 2, business models v1, released 2026-11.  Bump on any change to this module's data or rules or to
#: the keyword and business-model rules of :mod:`core.classify_rules` (see the module docstring).
TAXONOMY_VERSION: Final = "nace2-bm1-2026.11"

#: the fields a classification sets (``ownership_type`` exists already and is not this taxonomy's)
CLASSIFICATION_FIELDS: Final = ("sector", "subsector", "business_model")
Field = Literal["sector", "subsector", "business_model"]

BUSINESS_MODELS: Final = ("B2B", "B2C", "B2B2C", "marketplace", "public sector")


@dataclass(frozen=True, slots=True)
class Section:
    """A NACE Rev. 2 section: its letter, official title and the (contiguous) divisions it covers."""

    code: str
    title: str
    first: int
    last: int

    @property
    def divisions(self) -> tuple[str, ...]:
        """The section's division codes, ``first``..``last`` (every one exists; the gaps, 04, 34, 40, ..., lie
        between sections)."""
        return tuple(code for n in range(self.first, self.last + 1) if (code := f"{n:02d}") in DIVISIONS)


_SECTION_ROWS: Final = (
    ("A", "Agriculture, forestry and fishing", 1, 3),
    ("B", "Mining and quarrying", 5, 9),
    ("C", "Manufacturing", 10, 33),
    ("D", "Electricity, gas, steam and air conditioning supply", 35, 35),
    ("E", "Water supply; sewerage, waste management and remediation activities", 36, 39),
    ("F", "Construction", 41, 43),
    ("G", "Wholesale and retail trade; repair of motor vehicles and motorcycles", 45, 47),
    ("H", "Transportation and storage", 49, 53),
    ("I", "Accommodation and food service activities", 55, 56),
    ("J", "Information and communication", 58, 63),
    ("K", "Financial and insurance activities", 64, 66),
    ("L", "Real estate activities", 68, 68),
    ("M", "Professional, scientific and technical activities", 69, 75),
    ("N", "Administrative and support service activities", 77, 82),
    ("O", "Public administration and defence; compulsory social security", 84, 84),
    ("P", "Education", 85, 85),
    ("Q", "Human health and social work activities", 86, 88),
    ("R", "Arts, entertainment and recreation", 90, 93),
    ("S", "Other service activities", 94, 96),
    (
        "T",
        "Activities of households as employers; undifferentiated goods- and services-producing activities of "
        "households for own use",
        97,
        98,
    ),
    ("U", "Activities of extraterritorial organisations and bodies", 99, 99),
)

#: section letter → :class:`Section`, A..U in order
SECTIONS: Final[Mapping[str, Section]] = MappingProxyType({row[0]: Section(*row) for row in _SECTION_ROWS})

# fmt: off
#: division code → official title; the 88 divisions of NACE Rev. 2, in order
DIVISIONS: Final[Mapping[str, str]] = MappingProxyType({
    "01": "Crop and animal production, hunting and related service activities",
    "02": "Forestry and logging",
    "03": "Fishing and aquaculture",
    "05": "Mining of coal and lignite",
    "06": "Extraction of crude petroleum and natural gas",
    "07": "Mining of metal ores",
    "08": "Other mining and quarrying",
    "09": "Mining support service activities",
    "10": "Manufacture of food products",
    "11": "Manufacture of beverages",
    "12": "Manufacture of tobacco products",
    "13": "Manufacture of textiles",
    "14": "Manufacture of wearing apparel",
    "15": "Manufacture of leather and related products",
    "16": "Manufacture of wood and of products of wood and cork, except furniture; manufacture of articles of "
          "straw and plaiting materials",
    "17": "Manufacture of paper and paper products",
    "18": "Printing and reproduction of recorded media",
    "19": "Manufacture of coke and refined petroleum products",
    "20": "Manufacture of chemicals and chemical products",
    "21": "Manufacture of basic pharmaceutical products and pharmaceutical preparations",
    "22": "Manufacture of rubber and plastic products",
    "23": "Manufacture of other non-metallic mineral products",
    "24": "Manufacture of basic metals",
    "25": "Manufacture of fabricated metal products, except machinery and equipment",
    "26": "Manufacture of computer, electronic and optical products",
    "27": "Manufacture of electrical equipment",
    "28": "Manufacture of machinery and equipment n.e.c.",
    "29": "Manufacture of motor vehicles, trailers and semi-trailers",
    "30": "Manufacture of other transport equipment",
    "31": "Manufacture of furniture",
    "32": "Other manufacturing",
    "33": "Repair and installation of machinery and equipment",
    "35": "Electricity, gas, steam and air conditioning supply",
    "36": "Water collection, treatment and supply",
    "37": "Sewerage",
    "38": "Waste collection, treatment and disposal activities; materials recovery",
    "39": "Remediation activities and other waste management services",
    "41": "Construction of buildings",
    "42": "Civil engineering",
    "43": "Specialised construction activities",
    "45": "Wholesale and retail trade and repair of motor vehicles and motorcycles",
    "46": "Wholesale trade, except of motor vehicles and motorcycles",
    "47": "Retail trade, except of motor vehicles and motorcycles",
    "49": "Land transport and transport via pipelines",
    "50": "Water transport",
    "51": "Air transport",
    "52": "Warehousing and support activities for transportation",
    "53": "Postal and courier activities",
    "55": "Accommodation",
    "56": "Food and beverage service activities",
    "58": "Publishing activities",
    "59": "Motion picture, video and television programme production, sound recording and music publishing "
          "activities",
    "60": "Programming and broadcasting activities",
    "61": "Telecommunications",
    "62": "Computer programming, consultancy and related activities",
    "63": "Information service activities",
    "64": "Financial service activities, except insurance and pension funding",
    "65": "Insurance, reinsurance and pension funding, except compulsory social security",
    "66": "Activities auxiliary to financial services and insurance activities",
    "68": "Real estate activities",
    "69": "Legal and accounting activities",
    "70": "Activities of head offices; management consultancy activities",
    "71": "Architectural and engineering activities; technical testing and analysis",
    "72": "Scientific research and development",
    "73": "Advertising and market research",
    "74": "Other professional, scientific and technical activities",
    "75": "Veterinary activities",
    "77": "Rental and leasing activities",
    "78": "Employment activities",
    "79": "Travel agency, tour operator and other reservation service and related activities",
    "80": "Security and investigation activities",
    "81": "Services to buildings and landscape activities",
    "82": "Office administrative, office support and other business support activities",
    "84": "Public administration and defence; compulsory social security",
    "85": "Education",
    "86": "Human health activities",
    "87": "Residential care activities",
    "88": "Social work activities without accommodation",
    "90": "Creative, arts and entertainment activities",
    "91": "Libraries, archives, museums and other cultural activities",
    "92": "Gambling and betting activities",
    "93": "Sports activities and amusement and recreation activities",
    "94": "Activities of membership organisations",
    "95": "Repair of computers and personal and household goods",
    "96": "Other personal service activities",
    "97": "Activities of households as employers of domestic personnel",
    "98": "Undifferentiated goods- and services-producing activities of private households for own use",
    "99": "Activities of extraterritorial organisations and bodies",
})
# fmt: on

#: division code → section letter
_DIVISION_SECTION: Final[Mapping[str, str]] = MappingProxyType(
    {code: s.code for s in SECTIONS.values() for code in s.divisions}
)


def section_of_division(code: str) -> str:
    """The section letter of a two-digit division code (``"62"`` → ``"J"``); KeyError for no such division."""
    try:
        return _DIVISION_SECTION[code]
    except KeyError:
        raise KeyError(f"{code!r} is not a NACE Rev. 2 division") from None


# ---------------------------------------------------------------------------------------------------------------
# NACE codes
# ---------------------------------------------------------------------------------------------------------------

#: what :func:`read_nace` accepts, for messages
NACE_FORMAT: Final = "a section letter A–U, or NN, NN.N or NN.NN"
#: an optional section letter (and dot), the two-digit division, then an optional group digit and class digit, with or
#: without the dot (``C10.11``, ``10.11``, ``1011``, ``10.1``, ``101``, ``10``); whitespace is removed first
_NACE: Final = re.compile(r"(?:([A-U])\.?)?([0-9]{2})(?:\.?([0-9]{1,2}))?")


@dataclass(frozen=True, slots=True)
class NaceCode:
    """A NACE Rev. 2 code read by :func:`read_nace`: its stored form, section and (unless a bare section) division."""

    code: str  #: the stored form: ``"C"``, ``"10"``, ``"10.1"`` or ``"10.11"``
    section: str
    division: str | None


class NaceCodeError(ValueError):
    """Why :func:`read_nace` refused a code: ``kind`` is ``format``, ``division`` or ``section``.

    ``division`` is the two digits read (``division``/``section`` kinds), ``letter`` the section letter given and
    ``section`` the division's real one (``section`` kind), so callers can word their own reasons.
    """

    def __init__(self, kind: Literal["format", "division", "section"], division: str = "", letter: str = "") -> None:
        self.kind = kind
        self.division = division
        self.letter = letter
        self.section = _DIVISION_SECTION.get(division, "")
        messages = {
            "format": f"not a NACE Rev. 2 code ({NACE_FORMAT})",
            "division": f"{division} is not a NACE Rev. 2 division",
            "section": f"division {division} is in section {self.section}, not {letter}",
        }
        super().__init__(messages[kind])


@lru_cache(maxsize=8192)
def read_nace(code: str) -> NaceCode:
    """``code`` as a NACE Rev. 2 section, division, group or class; raises :class:`NaceCodeError` otherwise.

    Whitespace anywhere and case do not matter; the group/class dot is optional (``1011`` → ``10.11``,
    ``101`` → ``10.1``); a leading section letter, with or without a dot, must be the division's (``J62.01``,
    ``J.62.01``, ``j 62 01``).  The division must exist; groups and classes are checked for shape only (the
    standard has ~600 classes, and a wrong class in a right division still gives the right sector and
    subsector).  Leading zeros lost by a spreadsheet (``1.11``) are not guessed back.
    """
    compact = "".join(code.split()).upper()
    if len(compact) == 1 and compact in SECTIONS:
        return NaceCode(compact, compact, None)
    match = _NACE.fullmatch(compact)
    if match is None:
        raise NaceCodeError("format")
    letter, division, rest = match.groups()
    section = _DIVISION_SECTION.get(division)
    if section is None:
        raise NaceCodeError("division", division)
    if letter is not None and letter != section:
        raise NaceCodeError("section", division, letter)
    return NaceCode(division if rest is None else f"{division}.{rest}", section, division)


def parse_nace(code: str | None) -> tuple[str, str | None] | None:
    """``(section, division)`` of a NACE code in any spelling :func:`read_nace` accepts; None for blank or garbage.

    ``"62.01"``, ``"6201"``, ``"J62.01"``, ``"62"`` → ``("J", "62")``; a bare section ``"J"`` → ``("J", None)``.
    """
    if not code:
        return None
    try:
        nace = read_nace(code)
    except NaceCodeError:
        return None
    return nace.section, nace.division


# ---------------------------------------------------------------------------------------------------------------
# Classification values
# ---------------------------------------------------------------------------------------------------------------

_BUSINESS_MODEL_KEYS: Final = {model.casefold(): model for model in BUSINESS_MODELS}


def is_valid(field: str, value: str | None) -> bool:
    """Whether ``value`` is a valid stored value of classification ``field``, exactly as stored.

    ``sector``: a section letter (upper case); ``subsector``: a two-digit division code; ``business_model``: one
    of :data:`BUSINESS_MODELS`.  None is not valid (a classification that lacks a field is the caller's call, see
    :func:`check_classification`).  ValueError for a field that is not a classification field.
    """
    if field == "sector":
        return value in SECTIONS
    if field == "subsector":
        return value in DIVISIONS
    if field == "business_model":
        return value in BUSINESS_MODELS
    raise ValueError(f"{field!r} is not a classification field ({', '.join(CLASSIFICATION_FIELDS)})")


def normalise_value(field: str, value: str | None) -> str | None:
    """``value`` in its stored form when it clearly means one, else None: for answers that are not exactly stored.

    ``sector``: ``" j "`` → ``"J"``; ``subsector``: any NACE spelling with a division (``"J62.01"``, ``"6201"``,
    ``"62"``) → ``"62"``; ``business_model``: case and spaces do not matter (``"b2b"``, ``"Public  Sector"``).
    The result still needs :func:`check_classification` for the combination.
    """
    if field not in CLASSIFICATION_FIELDS:
        raise ValueError(f"{field!r} is not a classification field ({', '.join(CLASSIFICATION_FIELDS)})")
    if value is None:
        return None
    text = " ".join(value.split())
    if field == "sector":
        return text.upper() if text.upper() in SECTIONS else None
    if field == "subsector":
        parsed = parse_nace(text)
        return parsed[1] if parsed is not None else None
    return _BUSINESS_MODEL_KEYS.get(text.casefold())


def check_classification(
    sector: str | None,
    subsector: str | None,
    business_model: str | None,
    *,
    require: Iterable[str] = (),
) -> list[str]:
    """Human-readable problems with a classification, empty when it is valid.

    Each given value must be valid as stored (:func:`is_valid`), and a subsector must lie in the given sector.
    A field that is None is not a problem unless named in ``require`` (an LLM answer in full mode requires all
    three; column mode requires its one field; the local rules leave unknown fields None).
    """
    required = set(require)
    if not required <= set(CLASSIFICATION_FIELDS):
        raise ValueError(f"require: {sorted(required - set(CLASSIFICATION_FIELDS))} are not classification fields")
    values = {"sector": sector, "subsector": subsector, "business_model": business_model}
    problems = [f"{field} is missing" for field in CLASSIFICATION_FIELDS if field in required and values[field] is None]
    if sector is not None and not is_valid("sector", sector):
        problems.append(f"sector {sector!r} is not a NACE Rev. 2 section (A–U)")
    if subsector is not None and not is_valid("subsector", subsector):
        problems.append(f"subsector {subsector!r} is not a NACE Rev. 2 division (two digits, 01–99)")
    elif subsector is not None and sector in SECTIONS and _DIVISION_SECTION[subsector] != sector:
        problems.append(
            f"subsector {subsector} ({DIVISIONS[subsector]}) is in section {_DIVISION_SECTION[subsector]}, "
            f"not in sector {sector}"
        )
    if business_model is not None and not is_valid("business_model", business_model):
        problems.append(f"business_model {business_model!r} is not one of {', '.join(BUSINESS_MODELS)}")
    return problems
