"""Checks that keep garbage away from paid providers, and the text cleaning every stored string goes through.

Bad input never costs money: before a company is sent to a provider, :func:`check_company` looks at its name
and website and returns a short reason when the company is unfit (the batch then fails it as
:class:`core.errors.InvalidInputError`, without a provider call, and flags it for review).  Everything here is
pure (no database, no Prefect, no network: no DNS lookups), so a CSV import reuses the same rules.

Websites
    Only public ``http``/``https`` URLs pass: no other scheme (``javascript:``, ``file:``, ``ftp:``, ``data:``),
    no user name or password in the URL, a valid port, a syntactically valid host (IDNA for international names),
    and a host that is neither a non-public IP address (loopback, private, link-local such as the cloud metadata
    address 169.254.169.254, unspecified, multicast, reserved; IPv4 and IPv6, IPv4 inside IPv6, and the integer,
    hex and octal IPv4 spellings browsers accept such as ``http://2130706433/`` or ``http://0x7f.1/``) nor a local
    name (``localhost``, ``*.localhost``, ``*.local``, ``*.internal``, ``*.localdomain``, ``*.home.arpa``, or a
    name without a dot).  A name that merely *resolves* to a private address is not caught: that needs DNS, which
    belongs to the HTTP client that fetches (the provider, for enrichment), not to this offline check.

    **A website without a scheme** (``example.com``, ``www.acme.nl/about``) is accepted and read as ``https://``:
    that is how company data usually spells websites, nearly every company site serves https, and a site that
    only speaks http still answers the provider (which follows redirects).  :func:`normalise_website` returns
    that https form.  A scheme-relative ``//example.com`` reads as https too.

Reasons are short, start with ``invalid input:`` and never echo secrets: a user name and password, query values
and fragments are masked (``https://***@example.com/?token=***``) and long URLs are cut.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import unicodedata
from typing import NamedTuple
from urllib.parse import urlsplit

try:  # IDNA 2008 with UTS #46 mapping (comes with httpx); the stdlib codec (IDNA 2003) is the fallback
    import idna as _idna
except ImportError:  # pragma: no cover - httpx depends on idna
    _idna = None  # type: ignore[assignment]

from core.errors import InvalidInputError

#: URLs longer than this are refused (browsers and crawlers cap around 2,000 characters; data this long is garbage)
MAX_URL_LENGTH = 2000
#: how much of a website a reason shows
_SHOWN_CHARS = 100

# ---------------------------------------------------------------------------------------------------------------
# Text cleaning
# ---------------------------------------------------------------------------------------------------------------

#: Unicode category Cc except tab, newline and carriage return, and every surrogate code point (a Python string
#: only holds one when it came from broken input; it cannot be encoded as UTF-8, so no database takes it)
_UNWANTED = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def clean_text(value: str) -> str:
    """``value`` without control characters (Cc except ``\\t \\n \\r``) or lone surrogates, NFC-normalised.

    PostgreSQL refuses NUL in text, and control characters are never meant: this runs on every text column
    (``core.clean_types``).  The common case (nothing to change) returns ``value`` itself after a C-speed scan:
    ``isprintable()`` for ASCII text, a precompiled regex and Python's NFC quick check for the rest.
    """
    if value.isascii():  # O(1) in CPython; ASCII is always NFC
        # isprintable() is False for every ASCII control character, and for tab, newline and CR, which stay:
        # a C-speed test that settles the common case; the regex only runs on text that has line breaks or worse
        if value.isprintable() or _UNWANTED.search(value) is None:
            return value
        return _UNWANTED.sub("", value)
    if _UNWANTED.search(value) is not None:
        value = _UNWANTED.sub("", value)
    if not unicodedata.is_normalized("NFC", value):
        value = unicodedata.normalize("NFC", value)
    return value


# ---------------------------------------------------------------------------------------------------------------
# Names
# ---------------------------------------------------------------------------------------------------------------

#: ASCII characters that show nothing: controls, space, DEL
_ASCII_BLANK = "".join(map(chr, range(0x21))) + "\x7f"
#: letters that render as blank space (Hangul fillers, braille blank): a classic way to fake a non-empty name
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")


def _visible(char: str) -> bool:
    # letters, numbers, punctuation and symbols show; controls, format characters (zero-width space and joiners,
    # byte-order marks, bidi marks), separators (spaces) and lone combining marks do not
    return unicodedata.category(char)[0] in "LNPS" and char not in _BLANK_LETTERS


def check_name(name: str | None) -> str | None:
    """None when the name shows at least one visible character, else the reason."""
    if name is None:
        return "invalid input: the name is empty"
    if name.isascii():
        empty = not name.strip(_ASCII_BLANK)
    else:
        empty = not any(_visible(c) for c in name)
    return "invalid input: the name is empty" if empty else None


# ---------------------------------------------------------------------------------------------------------------
# Websites
# ---------------------------------------------------------------------------------------------------------------

#: ``scheme:`` at the start of a URL (RFC 3986)
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")
#: ``host:port`` without a scheme (``example.com:8080/path``), which would otherwise read as scheme ``example.com``
_HOST_PORT = re.compile(r"[^:/?#@]+:\d+(?:[/?#]|$)")
#: whitespace, controls and invisible format characters inside a URL: never part of a real address
_BAD_URL_CHAR = re.compile(r"[\s\x00-\x1f\x7f-\x9f\u00ad\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]")
_EDGE_JUNK = " \t\r\n\f\v\u00a0\u200b\u2060\ufeff"
#: one host label: letters, digits and inner hyphens (and underscores, which browsers accept in sub-domains)
_LABEL = re.compile(r"(?!-)[a-z0-9_\-]{1,63}(?<!-)")
#: a top-level domain is letters (or an IDN ``xn--`` label); a last label that is a number makes the host an IPv4
#: address in a browser's eyes (WHATWG URL: "ends in a number")
_TLD = re.compile(r"[a-z]{2,63}|xn--[a-z0-9\-]{1,59}")
_NUMERIC_LABEL = re.compile(r"[0-9]+|0x[0-9a-f]*")
_LOCAL_SUFFIXES = (".localhost", ".local", ".internal", ".localdomain", ".home.arpa")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_DEFAULT_PORTS = {"http": 80, "https": 443}

# what a reason shows of a URL: user info, query values and the fragment masked
_MASK_USERINFO = re.compile(r"^((?:[A-Za-z][A-Za-z0-9+.\-]*:)?//)?[^?#]*@")
_MASK_QUERY_VALUE = re.compile(r"([?&][^=&#]*=)[^&#]*")
_MASK_FRAGMENT = re.compile(r"#.*", re.DOTALL)

_IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class _Invalid(Exception):
    """A website problem, worded to follow ``website '<url>'``."""


class _Website(NamedTuple):
    scheme: str
    host: str  # ASCII, lowercase, no trailing dot; IPv6 in brackets
    port: int | None  # None when it is the scheme's default
    path: str
    query: str


def redact_url(url: str) -> str:
    """``url`` as a reason may show it: credentials, query values and the fragment masked, cut to 100 chars."""
    text = _MASK_USERINFO.sub(r"\1***@", url, count=1)
    text = _MASK_FRAGMENT.sub("#***", _MASK_QUERY_VALUE.sub(r"\1***", text))
    text = _BAD_URL_CHAR.sub(lambda m: " " if m.group().isspace() else "", text)
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 1] + "…"


def _ip_problem(address: _IPAddress) -> str | None:
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id:
            return "has an IPv6 address with a zone index"
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address.teredo is not None:
            embedded = address.teredo[1]
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            problem = _ip_problem(embedded)
            if problem is not None:
                return problem
    if address.is_loopback:
        return "points at a loopback address"
    if address.is_unspecified:
        return "points at an unspecified address"
    if address.is_link_local:
        return "points at a link-local address"
    if address.is_multicast:
        return "points at a multicast address"
    if address.is_reserved:
        return "points at a reserved address"
    if address.is_private:
        return "points at a private address"
    if not address.is_global:
        return "points at a non-public address"
    return None


def _ascii_host(host: str) -> str:
    """The host's ASCII (IDNA) form, lowercase; raises ``_Invalid``."""
    if host.isascii():
        host = host.lower()
        for label in host.split("."):
            if label.startswith("xn--"):
                try:
                    _idna.decode(label) if _idna is not None else label.encode("ascii").decode("idna")
                except (UnicodeError, ValueError) as exc:
                    raise _Invalid("has an invalid internationalised host name") from exc
        return host
    try:
        if _idna is not None:
            encoded = _idna.encode(host, uts46=True, transitional=False)
        else:  # pragma: no cover
            encoded = host.encode("idna")
    except (UnicodeError, ValueError) as exc:
        raise _Invalid("has an invalid internationalised host name") from exc
    return encoded.decode("ascii").lower()


def _check_host(host: str, bracketed: bool) -> str:
    """The canonical host (``[v6]``, dotted IPv4 or an IDNA name); raises ``_Invalid``."""
    if bracketed:
        try:
            address6 = ipaddress.IPv6Address(host)
        except ValueError as exc:
            raise _Invalid("has an invalid IPv6 address") from exc
        problem = _ip_problem(address6)
        if problem is not None:
            raise _Invalid(problem)
        return f"[{address6.compressed}]"
    host = _ascii_host(host)
    if host.endswith("."):
        host = host[:-1]  # the DNS root: "example.com." is "example.com"
    labels = host.split(".")
    if not host or len(host) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise _Invalid("has an invalid host name")
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        # an IPv4 address in any spelling a browser accepts (2130706433, 0x7f.1, 0177.0.0.1, 127.1): inet_aton
        # parses the same forms; a number that is not a valid address is not a valid host either
        try:
            address4 = ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError as exc:
            raise _Invalid("has an invalid IP address") from exc
        problem = _ip_problem(address4)
        if problem is not None:
            raise _Invalid(problem)
        return str(address4)
    if host == "localhost" or host.endswith(_LOCAL_SUFFIXES):
        raise _Invalid("points at a local host name")
    if len(labels) < 2:
        raise _Invalid("has a host name without a dot (not a public domain)")
    if not _TLD.fullmatch(labels[-1]):
        raise _Invalid("has an invalid top-level domain")
    return host


def _parse_website(raw: str) -> _Website:
    """Split and check a website; raises ``_Invalid`` (the URL's length is checked by the caller)."""
    text = raw.strip(_EDGE_JUNK)
    if _BAD_URL_CHAR.search(text):
        raise _Invalid("is not a valid URL (it contains spaces or control characters)")
    if "\\" in text:  # browsers read "\" as "/": "https://a.com\@b.com" is a.com to them and b.com to urllib
        raise _Invalid("is not a valid URL (it contains a backslash)")
    scheme_match = _SCHEME.match(text)
    if scheme_match is not None and not _HOST_PORT.match(text):
        scheme = scheme_match.group()[:-1].lower()
        if scheme not in _DEFAULT_PORTS:
            raise _Invalid("is not an http(s) URL")
        rest = text[scheme_match.end() :]
        if not rest.startswith("//"):
            raise _Invalid("is not a valid URL (expected http(s)://host)")
        text = scheme + ":" + rest
    else:
        scheme = "https"
        text = "https:" + text if text.startswith("//") else "https://" + text
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        message = str(exc).lower()
        raise _Invalid("has an invalid port" if "port" in message else "is not a valid URL") from exc
    netloc = parts.netloc
    if "@" in netloc:
        raise _Invalid("contains a user name or password (user:password@): remove them")
    if port == 0:
        raise _Invalid("has an invalid port")
    host_text = parts.hostname
    if not host_text:
        raise _Invalid("has no host")
    host = _check_host(host_text, bracketed=netloc.startswith("["))
    return _Website(
        scheme=scheme,
        host=host,
        port=None if port is None or port == _DEFAULT_PORTS[scheme] else port,
        path=parts.path or "/",
        query=parts.query,
    )


def _website(raw: str) -> _Website | str:
    """The parsed website, or the full reason it is unfit."""
    if len(raw) > MAX_URL_LENGTH:
        return f"invalid input: the website is {len(raw):,} characters long (at most {MAX_URL_LENGTH:,})"
    if not raw.strip(_EDGE_JUNK):
        return "invalid input: no website"
    try:
        return _parse_website(raw)
    except _Invalid as problem:
        return f"invalid input: website '{redact_url(raw.strip(_EDGE_JUNK))}' {problem}"


def check_website(website: str) -> str | None:
    """None when ``website`` is a public http(s) URL (a scheme-less one reads as https), else the reason."""
    parsed = _website(website)
    return parsed if isinstance(parsed, str) else None


def normalise_website(url: str) -> str:
    """The canonical form of a website: what an import stores and what duplicate detection compares.

    Scheme and host lowercased, the host IDNA-encoded (``münchen.de`` → ``xn--mnchen-3ya.de``) without a trailing
    dot, IPv4 addresses in dotted form, the default port dropped, an empty path written ``/``, the fragment
    dropped; a scheme-less website becomes https.  Path and query are kept as given.  Raises
    :class:`InvalidInputError` with :func:`check_website`'s reason when the website is unfit.
    """
    parsed = _website(url)
    if isinstance(parsed, str):
        raise InvalidInputError(parsed)
    port = f":{parsed.port}" if parsed.port is not None else ""
    query = f"?{parsed.query}" if parsed.query else ""
    return f"{parsed.scheme}://{parsed.host}{port}{parsed.path}{query}"


def check_company(name: str | None, website: str | None, *, website_required: bool) -> str | None:
    """None when the company is fit to send to a provider, else a short reason (``invalid input: ...``).

    Checks what it is given: the name always, the website whenever one is passed (a caller whose action does not
    use the website passes None), and its absence (None or blank) only when ``website_required``.
    """
    reason = check_name(name)
    if reason is not None:
        return reason
    if website is None or not website.strip(_EDGE_JUNK):
        return "invalid input: no website" if website_required else None
    return check_website(website)
