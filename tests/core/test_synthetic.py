"""The synthetic company dataset: deterministic, realistic, with known near-duplicates, and seedable."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import unicodedata
from collections.abc import Iterator
from dataclasses import asdict
from difflib import SequenceMatcher
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from core.db import create_db_engine, session_scope
from core.schema import Base, Company, CompanyStatus
from core.synthetic import (
    NACE_CODES,
    NAME_TYPO_SHARE,
    OWNERSHIP_TYPES,
    SyntheticCompany,
    generate_companies,
    seed_companies,
)

REPO_ROOT = Path(__file__).resolve().parents[2]

# Written out independently of the module: the real NACE Rev. 2 code of every industry it may produce.
EXPECTED_NACE = {
    "Vegetable farming": "01.13",
    "Dairy and cheese making": "10.51",
    "Bakery": "10.71",
    "Brewing": "11.05",
    "Sawmilling and timber": "16.10",
    "Basic chemicals": "20.14",
    "Pharmaceuticals": "21.20",
    "Plastic packaging": "22.22",
    "Precision machining": "25.62",
    "Lifting and handling equipment": "28.22",
    "Automotive parts": "29.32",
    "Electricity production": "35.11",
    "Building construction": "41.20",
    "Plumbing and HVAC installation": "43.22",
    "Wholesale trade": "46.90",
    "Supermarkets and grocery retail": "47.11",
    "Road freight transport": "49.41",
    "Warehousing and storage": "52.10",
    "Hotels": "55.10",
    "Restaurants": "56.10",
    "Software publishing": "58.29",
    "Software development": "62.01",
    "Data processing and hosting": "63.11",
    "Banking": "64.19",
    "Real estate": "68.20",
    "Accounting and tax advice": "69.20",
    "Management consultancy": "70.22",
    "Engineering services": "71.12",
    "Research and experimental development": "72.19",
    "Advertising": "73.11",
    "Education and training": "85.59",
    "General medical practice": "86.21",
}

COUNTRY_TLDS = {
    "Netherlands": "nl",
    "Belgium": "be",
    "Germany": "de",
    "France": "fr",
    "United Kingdom": "co.uk",
    "Spain": "es",
    "Italy": "it",
    "Poland": "pl",
    "Sweden": "se",
    "Denmark": "dk",
    "Ireland": "ie",
    "Austria": "at",
}

HOST = re.compile(r"^(www\.)?[a-z0-9]+(-[a-z0-9]+)*\.(com|co\.uk|[a-z]{2})$")


@pytest.fixture(scope="module")
def companies() -> list[SyntheticCompany]:
    return generate_companies(2000, seed=7)


@pytest.fixture
def engine() -> Iterator[Engine]:
    engine = create_db_engine("sqlite:///:memory:")
    Base.metadata.create_all(engine)
    yield engine
    engine.dispose()


def host_of(url: str) -> str:
    host = urlsplit(url).hostname or ""
    return host.removeprefix("www.")


def ascii_folds(text: str) -> set[str]:
    """``"Müller Bäckerei GmbH"`` -> ``{"muellerbaeckereigmbh", "mullerbackereigmbh"}`` (both conventions)."""
    text = text.lower().replace("ł", "l").replace("ß", "ss").replace("æ", "ae").replace("œ", "oe")
    expanded = text.replace("ä", "ae").replace("ö", "oe").replace("ü", "ue").replace("ø", "oe").replace("å", "aa")
    return {
        re.sub(r"[^a-z0-9]", "", unicodedata.normalize("NFKD", t).encode("ascii", "ignore").decode())
        for t in (text.replace("ø", "o"), expanded)
    }


def name_ratio(a: str, b: str) -> float:
    return SequenceMatcher(None, a.casefold(), b.casefold()).ratio()


# --- determinism ----------------------------------------------------------------------------------


def test_same_seed_same_list() -> None:
    assert generate_companies(500, seed=11) == generate_companies(500, seed=11)


def test_different_seed_different_list() -> None:
    a, b = generate_companies(200, seed=1), generate_companies(200, seed=2)
    assert a != b
    assert sum(x.name == y.name for x, y in zip(a, b, strict=True)) < 20


def test_same_list_in_another_process_with_another_hash_seed() -> None:
    here = [asdict(c) for c in generate_companies(300, seed=5)]
    code = (
        "import json; from core.synthetic import generate_companies; from dataclasses import asdict; "
        "print(json.dumps([asdict(c) for c in generate_companies(300, seed=5)]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        env={"PYTHONHASHSEED": "12345", "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert json.loads(out) == here


# --- shape ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [0, 1, 2, 37, 1000])
def test_requested_count(n: int) -> None:
    assert len(generate_companies(n, seed=3)) == n


def test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        generate_companies(-1)
    with pytest.raises(ValueError):
        generate_companies(10, duplicate_fraction=1.0)
    with pytest.raises(ValueError):
        generate_companies(10, duplicate_fraction=-0.1)


def test_fields_are_filled_and_in_range(companies: list[SyntheticCompany]) -> None:
    for c in companies:
        assert c.name.strip() == c.name and c.name
        assert c.industry and c.country and c.activity_description
        assert c.ownership_type in OWNERSHIP_TYPES
        assert 0 <= c.priority <= 10
        assert 1 <= c.activity_description.count(". ") + 1 <= 3  # one or two sentences
        assert c.activity_description[0].isupper()


def test_nace_codes_match_the_industry(companies: list[SyntheticCompany]) -> None:
    assert dict(NACE_CODES) == EXPECTED_NACE
    for c in companies:
        assert EXPECTED_NACE[c.industry] == c.nace_code
        assert re.fullmatch(r"\d{2}\.\d{2}", c.nace_code)
    assert len({c.industry for c in companies}) >= 25


def test_varied_and_european_leaning(companies: list[SyntheticCompany]) -> None:
    countries = [c.country for c in companies]
    assert set(countries) == set(COUNTRY_TLDS)
    big_five = sum(c in {"Netherlands", "Belgium", "Germany", "France", "United Kingdom"} for c in countries)
    assert big_five / len(countries) > 0.6
    assert {c.ownership_type for c in companies} == set(OWNERSHIP_TYPES)
    descriptions = [c.activity_description for c in companies]
    assert len(set(descriptions)) > 0.97 * len(descriptions)


def test_priority_skews_low(companies: list[SyntheticCompany]) -> None:
    priorities = [c.priority for c in companies]
    low = sum(p <= 3 for p in priorities)
    high = sum(p >= 7 for p in priorities)
    assert low > 0.6 * len(priorities)
    assert 0 < high < low / 4
    assert max(priorities) == 10 and min(priorities) == 0


def test_legal_suffix_matches_the_country(companies: list[SyntheticCompany]) -> None:
    by_country = {
        "Germany": ("GmbH", "KG", "AG", "UG", "SE"),
        "Netherlands": ("B.V.", "N.V.", "V.O.F."),
        "United Kingdom": ("Ltd", "Limited", "PLC"),
        "Poland": ("Sp. z o.o.", "S.A.", "Sp.j."),
        "Sweden": ("AB", "AB (publ)"),
    }
    for c in companies:
        if c.duplicate_of is None and c.country in by_country:
            assert c.name.endswith(by_country[c.country]), c.name


# --- websites -------------------------------------------------------------------------------------


def test_websites_are_valid_urls(companies: list[SyntheticCompany]) -> None:
    for c in companies:
        parts = urlsplit(c.website)
        assert parts.scheme in ("http", "https"), c.website
        assert parts.path in ("", "/") and not parts.query and not parts.fragment, c.website
        assert parts.hostname is not None and HOST.match(parts.hostname), c.website


def test_original_websites_follow_the_name_and_country(companies: list[SyntheticCompany]) -> None:
    for c in companies:
        if c.duplicate_of is not None:
            continue
        assert c.website.startswith("https://www."), c.website
        tld = host_of(c.website).split(".", 1)[1]
        assert tld in (COUNTRY_TLDS[c.country], "com"), c.website
        label = host_of(c.website).split(".", 1)[0].replace("-", "")
        name = re.sub(r" (and|en|und|et|y|e|i|och|og) ", " ", c.name)  # "X and Y" -> x-y, like "X & Y"
        assert any(fold.startswith(label) for fold in ascii_folds(name)), (c.name, c.website)


def test_known_example_shape() -> None:
    sites = {c.website for c in generate_companies(3000, seed=7)}
    assert any(re.fullmatch(r"https://www\.van[a-z]+-[a-z-]+\.nl", s) for s in sites)


# --- uniqueness and near-duplicates --------------------------------------------------------------


def test_names_and_websites_unique_among_originals(companies: list[SyntheticCompany]) -> None:
    originals = [c for c in companies if c.duplicate_of is None]
    names = [c.name.casefold() for c in originals]
    hosts = [host_of(c.website).split(".")[0] for c in originals]
    assert len(set(names)) == len(names)
    assert len(set(hosts)) == len(hosts)
    assert len({c.name for c in companies}) == len(companies)  # duplicates differ at least in spelling


@pytest.mark.parametrize("fraction", [0.0, 0.02, 0.1])
def test_duplicate_fraction_is_honoured(fraction: float) -> None:
    n = 1500
    dups = [c for c in generate_companies(n, seed=9, duplicate_fraction=fraction) if c.duplicate_of is not None]
    assert abs(len(dups) - n * fraction) <= max(2, 0.1 * n * fraction)


def test_duplicates_point_back_to_a_similar_earlier_original(companies: list[SyntheticCompany]) -> None:
    pairs = [(i, c) for i, c in enumerate(companies) if c.duplicate_of is not None]
    assert len(pairs) == 40
    targets = [c.duplicate_of for _, c in pairs]
    assert len(set(targets)) == len(targets)  # each original duplicated at most once: clean ground truth
    for i, dup in pairs:
        j = dup.duplicate_of
        assert j is not None and 0 <= j < i
        original = companies[j]
        assert original.duplicate_of is None
        assert dup.name != original.name
        assert name_ratio(dup.name, original.name) > 0.8, (original.name, dup.name)
        assert host_of(dup.website) == host_of(original.website)
        assert (dup.industry, dup.nace_code, dup.country) == (
            original.industry,
            original.nace_code,
            original.country,
        )
        assert SequenceMatcher(None, dup.activity_description, original.activity_description).ratio() > 0.9


def test_duplicates_use_the_promised_variations() -> None:
    companies = generate_companies(5000, seed=21, duplicate_fraction=0.05)
    seen: dict[str, int] = {}
    for dup in companies:
        if dup.duplicate_of is None:
            continue
        original = companies[dup.duplicate_of]
        kinds = set()
        if dup.name.casefold() == original.name.casefold():
            kinds.add("casing")
        elif original.name.startswith(dup.name + " "):
            kinds.add("suffix dropped")
        elif ("&" in original.name) != ("&" in dup.name):
            kinds.add("& vs and")
        elif dup.name.split()[-1] != original.name.split()[-1]:
            kinds.add("suffix changed")
        else:
            kinds.add("typo")
        if dup.website.startswith("http://"):
            kinds.add("http")
        if "://www." not in dup.website:
            kinds.add("no www")
        if dup.activity_description != original.activity_description:
            kinds.add("reworded")
        for kind in kinds:
            seen[kind] = seen.get(kind, 0) + 1
    assert set(seen) == {
        "casing",
        "suffix dropped",
        "suffix changed",
        "& vs and",
        "typo",
        "http",
        "no www",
        "reworded",
    }
    # typos in names are the hard case (embeddings drift below cosine 0.95): kept to a minority
    assert abs(seen["typo"] / 250 - NAME_TYPO_SHARE) < 0.06


# --- speed ----------------------------------------------------------------------------------------


# --- seeding the database ------------------------------------------------------------------------


def test_seed_companies_inserts_rows_and_returns_ids_in_order(engine: Engine) -> None:
    expected = generate_companies(1200, seed=4)
    with session_scope(engine) as session:
        ids = seed_companies(session, 1200, seed=4)
    assert len(ids) == 1200 and len(set(ids)) == 1200
    with session_scope(engine) as session:
        assert session.scalar(select(func.count()).select_from(Company)) == 1200
        rows = {row.id: row for row in session.scalars(select(Company))}
        for company_id, company in zip(ids, expected, strict=True):
            row = rows[company_id]
            assert row.name == company.name
            assert row.website == company.website
            assert (row.industry, row.nace_code, row.country) == (
                company.industry,
                company.nace_code,
                company.country,
            )
            assert row.activity_description == company.activity_description
            assert row.ownership_type == company.ownership_type
            assert row.priority == company.priority
            assert row.status is CompanyStatus.ACTIVE


def test_seed_companies_does_not_commit(engine: Engine) -> None:
    session = Session(engine)
    assert len(seed_companies(session, 50, seed=2)) == 50
    session.close()  # never committed, so closing rolls the inserts back
    with session_scope(engine) as check:
        assert check.scalar(select(func.count()).select_from(Company)) == 0


def test_seed_companies_appends_after_existing_rows(engine: Engine) -> None:
    with session_scope(engine) as session:
        first = seed_companies(session, 30, seed=1)
        second = seed_companies(session, 30, seed=2, duplicate_fraction=0.0)
    assert max(first) < min(second)
    assert second == sorted(second)
