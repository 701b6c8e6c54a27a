"""Import rows → normalised companies or rejections, and the duplicate-detection keys (pure: no database)."""

from __future__ import annotations

import threading

import pytest
from cleanco import basename

import core.company_domains as company_domains
import core.company_rows as company_rows
import core.name_keys as name_keys
from core.company_rows import (
    MAX_ACTIVITY_DESCRIPTION_CHARS,
    MAX_CELL_CHARS,
    InvalidValueError,
    NormalisedCompany,
    RejectedRow,
    check_nace,
    company_domain,
    country_code,
    name_key,
    normalise_row,
    normalise_rows,
    registrable_domain,
)
from core.errors import InvalidInputError


def company(**raw: str | None) -> NormalisedCompany:
    result = normalise_row({"name": "Acme", **raw}, 2)
    assert isinstance(result, NormalisedCompany), result
    return result


def reason(**raw: str | None) -> str:
    result = normalise_row(raw, 2)
    assert isinstance(result, RejectedRow), result
    return result.reason


# ---------------------------------------------------------------------------------------------------------------
# A typical row, and what is written
# ---------------------------------------------------------------------------------------------------------------


def test_typical_row() -> None:
    raw = {
        "name": " Acme  Foods B.V. ",
        "website": "WWW.Acme-Foods.nl",
        "industry": "Food processing",
        "nace_code": "1011",
        "country": "the Netherlands",
        "activity_description": "Makes soup.\nAnd bread.",
        "ownership_type": "Private",
        "priority": "5",
    }
    result = normalise_row(raw, 7)
    assert result == NormalisedCompany(
        name="Acme Foods B.V.",
        website="https://www.acme-foods.nl/",
        domain="acme-foods.nl",
        industry="Food processing",
        nace_code="10.11",
        country="NL",
        activity_description="Makes soup.\nAnd bread.",
        ownership_type="Private",
        priority=5,
        name_key="acme foods",
    )
    assert result.dedup_key == "d:acme-foods.nl"
    assert result.fields() == {
        "name": "Acme Foods B.V.",
        "website": "https://www.acme-foods.nl/",
        "domain": "acme-foods.nl",
        "name_key": "acme foods",
        "industry": "Food processing",
        "nace_code": "10.11",
        "country": "NL",
        "activity_description": "Makes soup.\nAnd bread.",
        "ownership_type": "Private",
        "priority": 5,
    }


def test_only_a_name() -> None:
    result = company()
    assert (result.website, result.domain, result.country, result.priority) == (None, None, None, None)
    assert result.dedup_key == "n:acme|"
    assert "priority" not in result.fields()  # the column default applies


def test_empty_values_are_none() -> None:
    result = company(website="  ", industry="\t", nace_code="", country=" ", ownership_type="\x00", priority=" ")
    assert (result.website, result.industry, result.nace_code, result.country, result.ownership_type) == (None,) * 5
    assert result.priority is None


def test_control_characters_and_nul_are_removed() -> None:
    result = company(name="Ac\x00me\x07  \t Foods\r\n", industry="Soft\x00ware", activity_description="a\x1bb\tc")
    assert result.name == "Acme Foods"
    assert result.industry == "Software"
    assert result.activity_description == "ab\tc"  # tab, newline and CR stay in free text


def test_text_is_nfc() -> None:
    assert company(name="Acme\u0301").name == "Acm\u00e9"


def test_unknown_field_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown fields \\['id'\\]"):
        normalise_row({"name": "Acme", "id": "3"}, 1)


# ---------------------------------------------------------------------------------------------------------------
# Rejections
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [None, "", "   ", "\x00\x01", "\u200b", "\u3164"])
def test_name_is_required(name: str | None) -> None:
    assert reason(name=name) == "name is empty"


def test_missing_name_is_rejected() -> None:
    assert reason(website="acme.nl") == "name is empty"


def test_length_limits_come_from_the_schema() -> None:
    assert company_rows._column_length("name") == 300
    assert reason(name="x" * 301) == "name is 301 characters long (at most 300)"
    assert company(name="x" * 300).name == "x" * 300
    assert reason(name="Acme", industry="i" * 201) == "industry is 201 characters long (at most 200)"
    assert reason(name="Acme", ownership_type="o" * 101) == "ownership_type is 101 characters long (at most 100)"


def test_long_name_counts_after_collapsing_whitespace() -> None:
    assert company(name=" ".join(["x"] * 150)).name == " ".join(["x"] * 150)  # 299 characters
    assert company(name="x  " * 100).name == " ".join(["x"] * 100)


def test_website_longer_than_its_column() -> None:
    website = "acme.com/" + "a" * 600
    assert reason(name="Acme", website=website) == "website is 617 characters long (at most 500)"


def test_activity_description_cap() -> None:
    assert company(activity_description="d" * MAX_ACTIVITY_DESCRIPTION_CHARS).activity_description
    assert reason(name="Acme", activity_description="d" * 20_001) == (
        "activity_description is 20,001 characters long (at most 20,000)"
    )


def test_huge_cell_is_rejected_without_being_echoed() -> None:
    cell = "secret-" + "x" * 5_000_000
    result = normalise_row({"name": "Acme", "activity_description": cell}, 9)
    assert isinstance(result, RejectedRow)
    assert result.reason == "activity_description is 5,000,007 characters long (a cell holds at most 100,000)"
    assert "secret" not in result.reason and "xxx" not in result.reason
    assert result.values["activity_description"] is cell  # the raw row is kept as it was


def test_cell_at_the_hard_cap_is_not_a_huge_cell() -> None:
    assert "a cell holds" not in reason(name="Acme", industry="i" * MAX_CELL_CHARS)


def test_long_values_are_cut_in_reasons() -> None:
    text = reason(name="Acme", country="Atlantis" * 1000)
    assert len(text) < 200 and "…" in text


@pytest.mark.parametrize(
    ("website", "expected"),
    [
        ("javascript:alert(1)", "website 'javascript:alert(1)' is not an http(s) URL"),
        ("http://localhost/", "website 'http://localhost/' points at a local host name"),
        ("http://10.0.0.1/", "website 'http://10.0.0.1/' points at a private address"),
        ("https://user:pw@acme.nl/", "website 'https://***@acme.nl/' contains a user name or password"),
        ("acme", "website 'acme' has a host name without a dot (not a public domain)"),
    ],
)
def test_invalid_website(website: str, expected: str) -> None:
    text = reason(name="Acme", website=website)
    assert text.startswith(expected)
    assert "invalid input" not in text


def test_unknown_country() -> None:
    assert reason(name="Acme", country="Atlantis") == (
        "country 'Atlantis' is not an ISO 3166 country (name, alpha-2 or alpha-3)"
    )


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("X", "nace_code 'X' is not a NACE Rev. 2 code (a section letter A–U, or NN, NN.N or NN.NN)"),
        ("V", "nace_code 'V' is not a NACE Rev. 2 code"),
        ("10.111", "nace_code '10.111' is not a NACE Rev. 2 code"),
        ("10.", "nace_code '10.' is not a NACE Rev. 2 code"),
        ("1.11", "nace_code '1.11' is not a NACE Rev. 2 code"),
        ("10-11", "nace_code '10-11' is not a NACE Rev. 2 code"),
        ("04.11", "nace_code '04.11': 04 is not a NACE Rev. 2 division"),
        ("34", "nace_code '34': 34 is not a NACE Rev. 2 division"),
        ("00", "nace_code '00': 00 is not a NACE Rev. 2 division"),
        ("A10.11", "nace_code 'A10.11': division 10 is in section C, not A"),
    ],
)
def test_invalid_nace(code: str, expected: str) -> None:
    assert reason(name="Acme", nace_code=code).startswith(expected)
    with pytest.raises(InvalidValueError, match="^nace_code") as caught:
        check_nace(code)
    assert caught.value.reason.startswith(expected)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("abc", "priority 'abc' is not a whole number"),
        ("1.5", "priority '1.5' is not a whole number"),
        ("1_000", "priority '1_000' is not a whole number"),
        ("٣", "priority '٣' is not a whole number"),
        ("1001", "priority '1001' is out of range (-1000 to 1000)"),
        ("-1001", "priority '-1001' is out of range (-1000 to 1000)"),
        ("9" * 5000, "is out of range (-1000 to 1000)"),
    ],
)
def test_invalid_priority(value: str, expected: str) -> None:
    assert expected in reason(name="Acme", priority=value)


def test_every_problem_is_reported() -> None:
    result = normalise_row({"name": "", "country": "Atlantis", "nace_code": "99.9.9", "priority": "x"}, 4)
    assert isinstance(result, RejectedRow)
    assert result.row_number == 4
    assert result.reason.split("; ") == [
        "name is empty",
        "country 'Atlantis' is not an ISO 3166 country (name, alpha-2 or alpha-3)",
        "nace_code '99.9.9' is not a NACE Rev. 2 code (a section letter A–U, or NN, NN.N or NN.NN)",
        "priority 'x' is not a whole number",
    ]
    assert result.values == {"name": "", "country": "Atlantis", "nace_code": "99.9.9", "priority": "x"}


# ---------------------------------------------------------------------------------------------------------------
# Priority, NACE, countries
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"), [("5", 5), (" 12 ", 12), ("+3", 3), ("-1000", -1000), ("1000", 1000), ("7.0", 7), ("0", 0)]
)
def test_priority(value: str, expected: int) -> None:
    result = company(priority=value)
    assert result.priority == expected
    assert result.fields()["priority"] == expected


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("C", "C"),
        ("u", "U"),
        ("01", "01"),
        ("10.1", "10.1"),
        ("10.11", "10.11"),
        ("1011", "10.11"),
        ("101", "10.1"),
        ("C10.11", "10.11"),
        ("C 10.11", "10.11"),
        (" c10.11 ", "10.11"),
        ("99.00", "99.00"),
        ("35.11", "35.11"),
        ("68.20", "68.20"),
    ],
)
def test_nace(code: str, expected: str) -> None:
    assert check_nace(code) == expected
    assert company(nace_code=code).nace_code == expected


def test_blank_nace_is_none() -> None:
    assert check_nace("  ") is None


def test_every_nace_division() -> None:
    real = {1, 2, 3, 5, 6, 7, 8, 9, *range(10, 34), 35, 36, 37, 38, 39, 41, 42, 43, 45, 46, 47, *range(49, 54)}
    real |= {55, 56, *range(58, 64), 64, 65, 66, 68, *range(69, 76), *range(77, 83), 84, 85, 86, 87, 88}
    real |= {90, 91, 92, 93, 94, 95, 96, 97, 98, 99}
    for division in range(100):
        code = f"{division:02d}"
        if division in real:
            assert check_nace(code) == code
        else:
            with pytest.raises(InvalidValueError):
                check_nace(code)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("nl", "NL"),
        ("NL", "NL"),
        ("NLD", "NL"),
        ("nld", "NL"),
        ("Netherlands", "NL"),
        ("the netherlands", "NL"),
        ("The Netherlands", "NL"),
        ("Kingdom of the Netherlands", "NL"),
        ("United Kingdom", "GB"),
        ("UK", "GB"),
        ("U.K.", "GB"),
        ("GB", "GB"),
        ("USA", "US"),
        ("U.S.A.", "US"),
        ("United States of America", "US"),
        ("United States", "US"),
        ("Deutschland", "DE"),
        ("germany", "DE"),
        ("Côte d'Ivoire", "CI"),
        ("Cote d'Ivoire", "CI"),
        ("South Korea", "KR"),
        ("Korea, Republic of", "KR"),
        ("Trinidad & Tobago", "TT"),
        ("Czech Republic", "CZ"),
        ("Türkiye", "TR"),
        ("Turkey", "TR"),
        ("  nl  ", "NL"),
    ],
)
def test_country(value: str, expected: str) -> None:
    assert country_code(value) == expected
    assert company(country=value).country == expected


@pytest.mark.parametrize("value", ["Atlantis", "528", "XX", "Korea", "EU", "Nether lands", "Netherland"])
def test_not_a_country(value: str) -> None:
    assert country_code(value) is None  # no numeric codes, no guessing


def test_country_lookups_are_cached() -> None:
    country_code.cache_clear()
    for _ in range(3):
        country_code("Netherlands")
    info = country_code.cache_info()
    assert (info.hits, info.misses) == (2, 1)


# ---------------------------------------------------------------------------------------------------------------
# Domains
# ---------------------------------------------------------------------------------------------------------------


def test_subdomains_of_one_registrable_domain_collide() -> None:
    www = company(website="www.acme.co.uk")
    shop = company(name="Acme Shop", website="https://shop.acme.co.uk/en?x=1")
    assert www.domain == shop.domain == "acme.co.uk"
    assert www.dedup_key == shop.dedup_key == "d:acme.co.uk"


def test_different_domains_differ() -> None:
    assert company(website="acme.nl").dedup_key == "d:acme.nl"
    assert company(website="acme.com").dedup_key == "d:acme.com"


def test_idn_domain() -> None:
    result = company(website="https://www.München.de/about")
    assert result.website == "https://www.xn--mnchen-3ya.de/about"
    assert result.domain == "xn--mnchen-3ya.de"
    assert registrable_domain("münchen.de") == "xn--mnchen-3ya.de"


@pytest.mark.parametrize("website", ["http://8.8.8.8/", "8.8.8.8:8080/x", "http://[2001:4860:4860::8888]/"])
def test_ip_host_has_no_domain(website: str) -> None:
    result = company(website=website, country="NL")
    assert result.website is not None
    assert result.domain is None
    assert result.dedup_key == "n:acme|NL"
    assert registrable_domain(website) is None


@pytest.mark.parametrize(
    "website",
    [
        "https://www.facebook.com/acme",
        "facebook.com/acme",
        "https://nl.linkedin.com/company/acme",
        "instagram.com/acme",
        "https://sites.google.com/view/acme",
        "https://www.google.com/maps/place/Acme",
        "wordpress.com",
        "www.wordpress.com",
    ],
)
def test_shared_hosts_give_no_domain(website: str) -> None:
    result = company(website=website, country="DE")
    assert result.domain is None
    assert result.dedup_key == "n:acme|DE"
    assert registrable_domain(website) is not None  # the plain PSL answer is still there


@pytest.mark.parametrize(
    ("website", "expected"),
    [
        ("acme.wixsite.com/home", "acme.wixsite.com"),  # a PSL private suffix
        ("https://acme.github.io/", "acme.github.io"),
        ("acme.blogspot.com", "acme.blogspot.com"),
        ("acme.wordpress.com", "acme.wordpress.com"),  # not on the PSL: TENANT_SUFFIXES
        ("https://www.acme.wordpress.com/", "acme.wordpress.com"),
        ("acme.squarespace.com", "acme.squarespace.com"),
    ],
)
def test_hosted_sites_keep_the_customers_domain(website: str, expected: str) -> None:
    assert company(website=website).domain == expected
    assert company_domain(website) == expected


def test_registrable_domain() -> None:
    assert registrable_domain("https://shop.acme.co.uk/x") == "acme.co.uk"
    assert registrable_domain("shop.acme.co.uk") == "acme.co.uk"
    assert registrable_domain("https://www.facebook.com/acme") == "facebook.com"
    assert registrable_domain("https://acme.github.io/") == "acme.github.io"
    assert registrable_domain("github.io") is None  # a public suffix itself
    assert registrable_domain("co.uk") is None
    with pytest.raises(InvalidInputError):
        registrable_domain("javascript:alert(1)")


def test_domains_are_offline() -> None:
    extractor = company_domains._tld_extractor()
    assert extractor.suffix_list_urls == ()
    assert extractor.include_psl_private_domains is True


def test_extractor_is_built_once_across_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(company_domains, "_extractor", None)
    built: list[object] = []
    barrier = threading.Barrier(4)

    def build() -> None:
        barrier.wait()
        built.append(company_domains._tld_extractor())

    threads = [threading.Thread(target=build) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(built) == 4 and len({id(extractor) for extractor in built}) == 1


# ---------------------------------------------------------------------------------------------------------------
# Name keys
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "names",
    [
        ["Acme B.V.", "ACME BV", "Acme, b.v.", "Acmé B.V.", "acme", "ACME", "Acme bv.", "  Acme   B.V. "],
        ["Smith & Sons Ltd", "Smith and Sons Limited", "SMITH & SONS LTD.", "Smith &Sons, Ltd"],
        ["Müller GmbH", "Muller GmbH", "MÜLLER G.m.b.H."],
        ["Novo Nordisk A/S", "Novo Nordisk AS", "Novo-Nordisk A/S"],
        ["L'Oréal S.A.", "L\u2019Oreal SA", "LOREAL"],
        ["Ørsted A/S", "Orsted"],
    ],
)
def test_name_key_equivalences(names: list[str]) -> None:
    assert len({name_key(name) for name in names}) == 1, {name: name_key(name) for name in names}


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("Acme", "Acme Foods"),
        ("Acme Holding", "Acme"),
        ("Smith & Sons", "Smith"),
        ("Shell", "Shel"),
        ("Acme 1", "Acme 2"),
    ],
)
def test_name_key_non_equivalences(first: str, second: str) -> None:
    assert name_key(first) != name_key(second)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Holding", "holding"),
        ("Company", "company"),  # cleanco would strip it to nothing
        ("Ltd", "ltd"),
        ("B.V.", "bv"),
        ("Acme Company", "acme"),
        ("Müller GmbH & Co. KG", "muller"),  # the longest legal form
        ("Acme Holding B.V.", "acme holding"),  # one legal form, like cleanco
        ("!!!", "!!!"),  # nothing to fold: still a key
        ("株式会社トヨタ", "株式会社トヨタ"),
        ("ＡＣＭＥ", "acme"),  # full-width letters
    ],
)
def test_name_key(name: str, expected: str) -> None:
    assert name_key(name) == expected


def test_name_key_fits_its_column() -> None:
    result = company(name="& " * 150)  # folds to "and and ...", four times as long
    assert len(result.name_key) <= 300 and result.name_key.startswith("and and")


#: realistic names: ``name_key`` must strip what ``cleanco.basename`` strips
CLEANCO_SAMPLE = [
    "Acme B.V.",
    "ACME BV",
    "Acme, b.v.",
    "Acmé B.V.",
    "Smith & Sons Ltd",
    "Smith and Sons Limited",
    "Siemens AG",
    "Volkswagen Aktiengesellschaft",
    "Robert Bosch GmbH",
    "Koninklijke Philips N.V.",
    "Unilever PLC",
    "Tesco plc",
    "Apple Inc.",
    "Microsoft Corporation",
    "Amazon.com, Inc.",
    "Johnson & Johnson",
    "Procter & Gamble Co",
    "Nokia Oyj",
    "Volvo AB",
    "Equinor ASA",
    "Novo Nordisk A/S",
    "Nestlé S.A.",
    "Roche Holding AG",
    "L'Oréal S.A.",
    "TotalEnergies SE",
    "Renault S.A.S.",
    "Fiat S.p.A.",
    "Luxottica S.r.l.",
    "Telefónica, S.A.",
    "Inditex S.L.",
    "Grupo Bimbo S.A.B. de C.V.",
    "Cemex S.A. de C.V.",
    "Samsung Electronics Co., Ltd.",
    "Tata Consultancy Services Ltd.",
    "Infosys Pvt. Ltd.",
    "DBS Bank Pte Ltd",
    "BHP Group Pty Ltd",
    "Petronas Sdn Bhd",
    "Acme Holding B.V.",
    "Bakkerij Jansen V.O.F.",
    "Van den Berg C.V.",
    "Müller GmbH & Co. KG",
    "Schmidt KGaA",
    "Skoda a.s.",
    "Kofola s.r.o.",
    "Acme L.L.C.",
    "Acme LLP",
    "Acme Corp.",
    "Acme Company",
    "Holding",
    "Acme, Inc.",
    "Acme Incorporated",
]


@pytest.mark.parametrize("name", CLEANCO_SAMPLE)
def test_name_key_strips_what_cleanco_strips(name: str) -> None:
    assert name_key(name) == name_keys._fold(basename(name))


def test_dedup_key_by_name_and_country() -> None:
    nl = company(name="Acme B.V.", country="NL")
    assert nl.dedup_key == "n:acme|NL"
    assert company(name="ACME BV", country="Netherlands").dedup_key == nl.dedup_key
    assert company(name="Acme GmbH", country="DE").dedup_key == "n:acme|DE"
    assert company(name="Acme", country="DE").dedup_key != nl.dedup_key


# ---------------------------------------------------------------------------------------------------------------
# Many rows
# ---------------------------------------------------------------------------------------------------------------


def test_normalise_rows_keeps_row_numbers() -> None:
    rows = [
        {"name": "Acme"},
        {"name": ""},
        {"name": "Beta", "country": "Atlantis"},
        {"name": "Gamma", "website": "gamma.io"},
    ]
    companies, rejected = normalise_rows(rows, 2)
    assert [(number, item.name) for number, item in companies] == [(2, "Acme"), (5, "Gamma")]
    assert [(row.row_number, row.values) for row in rejected] == [(3, rows[1]), (4, rows[2])]


def test_normalise_rows_takes_any_iterable() -> None:
    companies, rejected = normalise_rows(({"name": f"Company {i}"} for i in range(3)), 10)
    assert [number for number, _ in companies] == [10, 11, 12] and rejected == []
