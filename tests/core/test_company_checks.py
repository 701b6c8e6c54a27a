"""The checks that keep garbage away from paid providers (pure: no database, no network)."""

from __future__ import annotations

import pytest

from core.company_checks import (
    MAX_URL_LENGTH,
    check_company,
    check_name,
    check_website,
    clean_text,
    normalise_website,
)
from core.errors import BulkAIError, InputError, InvalidInputError, ProviderError

# (website, what the reason must say)
HOSTILE = [
    ("javascript:alert(1)", "is not an http(s) URL"),
    ("JavaScript:alert(document.cookie)", "is not an http(s) URL"),
    ("file:///etc/passwd", "is not an http(s) URL"),
    ("ftp://example.com/file", "is not an http(s) URL"),
    ("data:text/html,<script>alert(1)</script>", "is not an http(s) URL"),
    ("gopher://example.com:70/", "is not an http(s) URL"),
    ("http:example.com", "is not a valid URL"),
    ("http://127.0.0.1:22", "points at a loopback address"),
    ("http://127.1/", "points at a loopback address"),
    ("http://0177.0.0.1/", "points at a loopback address"),
    ("http://0x7f000001/", "points at a loopback address"),
    ("http://0x7f.1/", "points at a loopback address"),
    ("http://2130706433/", "points at a loopback address"),
    ("http://[::1]/", "points at a loopback address"),
    ("http://[::ffff:127.0.0.1]/", "points at a loopback address"),
    ("http://[::ffff:7f00:1]/", "points at a loopback address"),
    ("http://[2002:7f00:1::]/", "points at a loopback address"),
    ("http://[64:ff9b::7f00:1]/", "points at a loopback address"),
    ("https://１２７.０.０.１/", "points at a loopback address"),
    ("http://10.0.0.5", "points at a private address"),
    ("http://172.16.3.4/", "points at a private address"),
    ("http://192.168.1.1", "points at a private address"),
    ("http://[fc00::1]/", "points at a private address"),
    ("http://[::ffff:10.0.0.1]/", "points at a private address"),
    ("http://169.254.169.254/latest/meta-data", "points at a link-local address"),
    ("http://[fe80::1]/", "points at a link-local address"),
    ("http://0.0.0.0/", "points at an unspecified address"),
    ("http://0/", "points at an unspecified address"),
    ("http://[::]/", "points at an unspecified address"),
    ("http://224.0.0.1/", "points at a multicast address"),
    ("http://[ff02::1]/", "points at a multicast address"),
    ("http://240.0.0.1/", "points at a reserved address"),
    ("http://255.255.255.255/", "points at a reserved address"),
    ("http://100.64.0.1/", "points at a non-public address"),
    ("http://1.2.3.256/", "has an invalid IP address"),
    ("http://example.0x7f/", "has an invalid IP address"),
    ("http://localhost:8080", "points at a local host name"),
    ("http://LOCALHOST./", "points at a local host name"),
    ("https://ＬＯＣＡＬＨＯＳＴ/", "points at a local host name"),
    ("http://app.localhost/", "points at a local host name"),
    ("http://printer.local/", "points at a local host name"),
    ("http://metadata.google.internal/computeMetadata/v1/", "points at a local host name"),
    ("http://server.localdomain/", "points at a local host name"),
    ("http://nas.home.arpa/", "points at a local host name"),
    ("http://intranet/", "has a host name without a dot"),
    ("localhost", "points at a local host name"),
    ("http://", "has no host"),
    ("https://", "has no host"),
    ("https:///path", "has no host"),
    ("https://exa mple.com", "contains spaces or control characters"),
    ("https://example.com/a b", "contains spaces or control characters"),
    ("https://exa\x00mple.com", "contains spaces or control characters"),
    ("https://exa\u200bmple.com", "contains spaces or control characters"),
    ("https://example.com\\@evil.com", "contains a backslash"),
    ("https://example.com:0/", "has an invalid port"),
    ("https://example.com:99999/", "has an invalid port"),
    ("https://example.com:http/", "has an invalid port"),
    ("http://[1::2::3]/", "is not a valid URL"),
    ("https://[fe80::1%25eth0]/", "zone index"),
    ("http://%31%32%37.0.0.1/", "has an invalid host name"),
    ("https://exa..mple.com/", "has an invalid host name"),
    ("https://-acme.com/", "has an invalid host name"),
    ("https://xn--zz.com/", "has an invalid internationalised host name"),
    ("https://example.c0m/", "has an invalid top-level domain"),
]


@pytest.mark.parametrize(("website", "problem"), HOSTILE)
def test_hostile_websites_are_refused_with_a_clear_reason(website: str, problem: str) -> None:
    reason = check_website(website)
    assert reason is not None, website
    assert reason.startswith("invalid input: ")
    assert problem in reason
    assert check_company("Acme", website, website_required=False) == reason
    assert check_company("Acme", website, website_required=True) == reason
    with pytest.raises(InvalidInputError) as raised:
        normalise_website(website)
    assert str(raised.value) == reason


def test_reasons_quote_the_website() -> None:
    assert check_website("javascript:alert(1)") == "invalid input: website 'javascript:alert(1)' is not an http(s) URL"
    assert (
        check_website("http://127.0.0.1:22")
        == "invalid input: website 'http://127.0.0.1:22' points at a loopback address"
    )
    assert check_website("file:///etc/passwd") == "invalid input: website 'file:///etc/passwd' is not an http(s) URL"


@pytest.mark.parametrize(
    "website",
    [
        "https://user:hunter2@example.com/",
        "http://admin:hunter2@127.0.0.1/",
        "https://token-hunter2@example.com/",
        "user:hunter2@example.com",
        "https://user:hun ter2@example.com/",
        "https://user:hunter2/x@example.com/",
        "https://user:hunter2@exa mple.com/",
    ],
)
def test_credentials_are_refused_and_never_echoed(website: str) -> None:
    reason = check_website(website)
    assert reason is not None
    assert "hunter2" not in reason and "hun ter2" not in reason
    assert "***" in reason


def test_credentials_reason_says_what_is_wrong() -> None:
    reason = check_website("https://user:hunter2@example.com/")
    assert reason == (
        "invalid input: website 'https://***@example.com/' contains a user name or password (user:password@): "
        "remove them"
    )


def test_query_values_and_fragments_are_masked_in_reasons() -> None:
    reason = check_website("http://10.0.0.1/?api_key=hunter2&x=1#access_token=hunter3")
    assert reason is not None
    assert "hunter2" not in reason and "hunter3" not in reason
    assert "?api_key=***&x=***#***" in reason


def test_overlong_urls_are_refused_without_echoing_them() -> None:
    website = "https://example.com/" + "a" * 4980
    assert len(website) == 5000
    reason = check_website(website)
    assert reason == f"invalid input: the website is 5,000 characters long (at most {MAX_URL_LENGTH:,})"
    at_limit = "https://example.com/" + "a" * (MAX_URL_LENGTH - 20)
    assert check_website(at_limit) is None


def test_reasons_shorten_long_urls() -> None:
    reason = check_website("ftp://example.com/" + "b" * 500)
    assert reason is not None and len(reason) < 200 and reason.endswith("…' is not an http(s) URL")


@pytest.mark.parametrize(
    ("website", "canonical"),
    [
        ("https://www.acme.co.uk", "https://www.acme.co.uk/"),
        ("http://example.com:8080/path", "http://example.com:8080/path"),
        ("HTTPS://WWW.Example.COM:443/Path?q=1#top", "https://www.example.com/Path?q=1"),
        ("http://example.com:80/", "http://example.com/"),
        ("https://example.com:80/", "https://example.com:80/"),
        ("https://example.com./", "https://example.com/"),
        ("https://münchen.de", "https://xn--mnchen-3ya.de/"),
        ("https://www.MÜNCHEN.de/straße", "https://www.xn--mnchen-3ya.de/straße"),
        ("https://xn--mnchen-3ya.de/", "https://xn--mnchen-3ya.de/"),
        ("https://例え.jp/", "https://xn--r8jz45g.jp/"),
        ("https://sub_domain.example.com/", "https://sub_domain.example.com/"),
        ("http://93.184.216.34/", "http://93.184.216.34/"),
        ("http://[2606:4700:0::1111]/", "http://[2606:4700::1111]/"),
        ("  https://example.com  ", "https://example.com/"),
        ("\ufeffhttps://example.com", "https://example.com/"),
        # scheme-less websites read as https (the module docstring says why)
        ("example.com", "https://example.com/"),
        ("www.acme.nl/about", "https://www.acme.nl/about"),
        ("example.com:8080/x", "https://example.com:8080/x"),
        ("//example.com/x", "https://example.com/x"),
    ],
)
def test_valid_websites_pass_and_normalise(website: str, canonical: str) -> None:
    assert check_website(website) is None
    assert check_company("Acme", website, website_required=True) is None
    assert normalise_website(website) == canonical
    assert normalise_website(canonical) == canonical  # idempotent


@pytest.mark.parametrize("website", [None, "", "   ", "\ufeff"])
def test_a_missing_website_fails_only_where_required(website: str | None) -> None:
    assert check_company("Acme", website, website_required=True) == "invalid input: no website"
    assert check_company("Acme", website, website_required=False) is None


@pytest.mark.parametrize(
    "name",
    [
        None,
        "",
        "   ",
        "\t\n",
        "\x00",
        "\x00 \x07",
        "\u200b",
        "\ufeff\u200d",
        "\u00a0\u3000",
        "\u3164",
        "\u2800",
        "\u0301",
    ],
)
def test_empty_names_are_refused(name: str | None) -> None:
    assert check_name(name) == "invalid input: the name is empty"
    assert check_company(name, "https://example.com", website_required=True) == "invalid input: the name is empty"


@pytest.mark.parametrize("name", ["Acme", " Acme B.V. ", "3M", "Ä", "東京電力", "-", "Acme\x00"])
def test_names_with_something_visible_pass(name: str) -> None:
    assert check_name(name) is None


def test_the_name_is_checked_before_the_website() -> None:
    assert check_company(" ", "javascript:alert(1)", website_required=True) == "invalid input: the name is empty"


def test_invalid_input_is_a_permanent_per_company_failure() -> None:
    error = InvalidInputError("invalid input: the name is empty")
    assert str(error) == "invalid input: the name is empty" and error.reason == str(error)
    assert error.retryable is False and error.attempts == 0
    assert isinstance(error, BulkAIError)
    assert not isinstance(error, ProviderError | InputError)


@pytest.mark.parametrize(
    ("dirty", "clean"),
    [
        ("Acme\x00 B.V.", "Acme B.V."),
        ("\x00\x01\x02\x1b[31mred\x7f", "[31mred"),
        ("keep\ttabs\nnewlines\r\nand CRs", "keep\ttabs\nnewlines\r\nand CRs"),
        ("C1\x85control\x9f", "C1control"),
        ("Cafe\u0301", "Café"),
        ("Cafe\u0301\x00", "Café"),
        ("lone \ud800surrogate\udfff", "lone surrogate"),
        ("zero\u200bwidth stays", "zero\u200bwidth stays"),
        ("", ""),
    ],
)
def test_clean_text(dirty: str, clean: str) -> None:
    assert clean_text(dirty) == clean
    assert clean_text(clean) == clean


@pytest.mark.parametrize("value", ["Acme B.V.", "two\nlines\tand a tab", "Müller & Söhne", "東京", "x" * 5000])
def test_clean_text_returns_clean_values_unchanged(value: str) -> None:
    assert clean_text(value) is value
