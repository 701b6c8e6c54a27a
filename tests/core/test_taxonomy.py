"""The classification taxonomy: NACE Rev. 2 sections and divisions, business models, parsing and validation."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from core.company_codes import check_nace
from core.taxonomy import (
    BUSINESS_MODELS,
    CLASSIFICATION_FIELDS,
    DIVISIONS,
    SECTIONS,
    TAXONOMY_VERSION,
    NaceCodeError,
    check_classification,
    is_valid,
    normalise_value,
    parse_nace,
    read_nace,
    section_of_division,
)

ROOT = Path(__file__).resolve().parents[2]

#: the sections' division ranges, as published (NACE Rev. 2, Eurostat 2008)
RANGES = {
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
#: the division numbers that do not exist inside those ranges
GAPS = {4, 34, 40, 44, 48, 54, 57, 67, 76, 83, 89}


def test_version_is_a_non_empty_string() -> None:
    assert isinstance(TAXONOMY_VERSION, str) and TAXONOMY_VERSION.strip() == TAXONOMY_VERSION != ""
    assert TAXONOMY_VERSION.startswith("nace2-")


def test_business_models() -> None:
    assert BUSINESS_MODELS == ("B2B", "B2C", "B2B2C", "marketplace", "public sector")
    assert CLASSIFICATION_FIELDS == ("sector", "subsector", "business_model")


def test_sections_are_a_to_u_with_their_ranges() -> None:
    assert list(SECTIONS) == [chr(c) for c in range(ord("A"), ord("U") + 1)]
    assert {code: (s.first, s.last) for code, s in SECTIONS.items()} == RANGES
    assert all(code == section.code for code, section in SECTIONS.items())


@pytest.mark.parametrize(
    ("code", "title"),
    [
        ("A", "Agriculture, forestry and fishing"),
        ("C", "Manufacturing"),
        ("G", "Wholesale and retail trade; repair of motor vehicles and motorcycles"),
        ("J", "Information and communication"),
        ("N", "Administrative and support service activities"),
        ("O", "Public administration and defence; compulsory social security"),
        ("U", "Activities of extraterritorial organisations and bodies"),
    ],
)
def test_section_titles(code: str, title: str) -> None:
    assert SECTIONS[code].title == title


def test_the_88_divisions() -> None:
    expected = {f"{n:02d}" for first, last in RANGES.values() for n in range(first, last + 1) if n not in GAPS}
    assert len(DIVISIONS) == 88
    assert set(DIVISIONS) == expected
    assert list(DIVISIONS) == sorted(DIVISIONS)
    assert all(title and title == title.strip() and "  " not in title for title in DIVISIONS.values())


@pytest.mark.parametrize(
    ("code", "title"),
    [
        ("01", "Crop and animal production, hunting and related service activities"),
        ("10", "Manufacture of food products"),
        ("28", "Manufacture of machinery and equipment n.e.c."),
        ("47", "Retail trade, except of motor vehicles and motorcycles"),
        ("62", "Computer programming, consultancy and related activities"),
        ("64", "Financial service activities, except insurance and pension funding"),
        ("86", "Human health activities"),
        ("99", "Activities of extraterritorial organisations and bodies"),
    ],
)
def test_division_titles(code: str, title: str) -> None:
    assert DIVISIONS[code] == title


@pytest.mark.parametrize("section", list(RANGES))
def test_every_sections_divisions(section: str) -> None:
    first, last = RANGES[section]
    divisions = SECTIONS[section].divisions
    assert divisions == tuple(f"{n:02d}" for n in range(first, last + 1) if n not in GAPS)
    for division in divisions:
        assert section_of_division(division) == section
        assert parse_nace(division) == (section, division)
        assert parse_nace(f"{section}{division}.11") == (section, division)
        assert check_classification(section, division, "B2B") == []
        other = "A" if section != "A" else "B"
        assert check_classification(other, division, None) == [
            f"subsector {division} ({DIVISIONS[division]}) is in section {section}, not in sector {other}"
        ]


def test_every_division_is_in_exactly_one_section() -> None:
    owners = [s.code for s in SECTIONS.values() for _ in s.divisions]
    assert len(owners) == len(DIVISIONS)


@pytest.mark.parametrize("code", ["00", "04", "34", "100", "6", "J", "62.01", ""])
def test_section_of_a_non_division(code: str) -> None:
    with pytest.raises(KeyError, match="not a NACE Rev. 2 division"):
        section_of_division(code)


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("62.01", ("J", "62")),
        ("6201", ("J", "62")),
        ("62", ("J", "62")),
        ("62.0", ("J", "62")),
        ("620", ("J", "62")),
        ("J62.01", ("J", "62")),
        ("J.62.01", ("J", "62")),
        ("J 62.01", ("J", "62")),
        (" j 62 01 ", ("J", "62")),
        ("62 . 01", ("J", "62")),
        ("J", ("J", None)),
        ("u", ("U", None)),
        ("01.13", ("A", "01")),
        ("C10.71", ("C", "10")),
        ("99.00", ("U", "99")),
        ("62\u00a001", ("J", "62")),  # a no-break space, as spreadsheets paste it
    ],
)
def test_parse_nace(code: str, expected: tuple[str, str | None]) -> None:
    assert parse_nace(code) == expected


@pytest.mark.parametrize(
    "code",
    [None, "", "   ", "x", "V", "JJ", "62.011", "62.", "1.11", "10-11", "04.11", "34", "00", "K62.01", "A10", "62/01"],
)
def test_parse_nace_garbage_is_none(code: str | None) -> None:
    assert parse_nace(code) is None


@pytest.mark.parametrize(
    ("code", "stored"), [("C", "C"), ("1011", "10.11"), ("101", "10.1"), ("C.10.11", "10.11"), (" 35.11 ", "35.11")]
)
def test_read_nace_stored_form_is_what_imports_store(code: str, stored: str) -> None:
    assert read_nace(code).code == stored
    assert check_nace(code) == stored  # imports (core.company_codes) read codes with the same grammar


@pytest.mark.parametrize(
    ("code", "kind", "message"),
    [
        ("10-11", "format", "not a NACE Rev. 2 code (a section letter A–U, or NN, NN.N or NN.NN)"),
        ("34", "division", "34 is not a NACE Rev. 2 division"),
        ("A10.11", "section", "division 10 is in section C, not A"),
    ],
)
def test_read_nace_errors(code: str, kind: str, message: str) -> None:
    with pytest.raises(NaceCodeError) as caught:
        read_nace(code)
    assert caught.value.kind == kind
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("field", "value", "valid"),
    [
        ("sector", "J", True),
        ("sector", "U", True),
        ("sector", "j", False),
        ("sector", "V", False),
        ("sector", "62", False),
        ("sector", None, False),
        ("subsector", "62", True),
        ("subsector", "01", True),
        ("subsector", "1", False),
        ("subsector", "62.01", False),
        ("subsector", "04", False),
        ("subsector", "J", False),
        ("business_model", "B2B", True),
        ("business_model", "public sector", True),
        ("business_model", "b2b", False),
        ("business_model", "B2G", False),
        ("business_model", "", False),
    ],
)
def test_is_valid(field: str, value: str | None, valid: bool) -> None:
    assert is_valid(field, value) is valid


def test_every_business_model_is_valid() -> None:
    assert all(is_valid("business_model", model) for model in BUSINESS_MODELS)


def test_an_unknown_field() -> None:
    with pytest.raises(ValueError, match="ownership_type"):
        is_valid("ownership_type", "cooperative")
    with pytest.raises(ValueError, match="not a classification field"):
        normalise_value("nace_code", "62")
    with pytest.raises(ValueError, match="not classification fields"):
        check_classification("J", "62", "B2B", require=["nace_code"])


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("sector", " j ", "J"),
        ("sector", "Information", None),
        ("subsector", "J62.01", "62"),
        ("subsector", "6201", "62"),
        ("subsector", "J", None),
        ("subsector", "34", None),
        ("business_model", "b2b", "B2B"),
        ("business_model", " Public   Sector ", "public sector"),
        ("business_model", "Marketplace", "marketplace"),
        ("business_model", "B2G", None),
        ("business_model", None, None),
    ],
)
def test_normalise_value(field: str, value: str | None, expected: str | None) -> None:
    assert normalise_value(field, value) == expected


def test_check_classification_valid() -> None:
    assert check_classification("J", "62", "B2B") == []
    assert check_classification("J", None, None) == []
    assert check_classification(None, "62", "marketplace") == []  # a subsector alone is checked alone
    assert check_classification(None, None, None) == []


def test_check_classification_reports_every_problem() -> None:
    assert check_classification("Z", "62.01", "b2b") == [
        "sector 'Z' is not a NACE Rev. 2 section (A–U)",
        "subsector '62.01' is not a NACE Rev. 2 division (two digits, 01–99)",
        "business_model 'b2b' is not one of B2B, B2C, B2B2C, marketplace, public sector",
    ]
    assert check_classification("K", "62", "B2B") == [
        "subsector 62 (Computer programming, consultancy and related activities) is in section J, not in sector K"
    ]


def test_check_classification_required_fields() -> None:
    assert check_classification(None, None, "B2C", require=CLASSIFICATION_FIELDS) == [
        "sector is missing",
        "subsector is missing",
    ]
    assert check_classification(None, None, "B2C", require=["business_model"]) == []


def test_the_domain_modules_are_stdlib_only() -> None:
    """No Prefect, SQLAlchemy or other third-party import: the rules run anywhere, fast to import."""
    code = (
        "import sys; import core.taxonomy, core.classify_rules; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'prefect', 'sqlalchemy', 'pycountry', 'numpy'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"
