"""Domains: the registrable domain of a website, and the domain that identifies the company behind it.

A company's duplicate-detection key is ``d:<domain>`` when its website identifies it
(:attr:`core.company_rows.NormalisedCompany.dedup_key`).  The domain is the *registrable* domain
(``www.acme.co.uk`` and ``shop.acme.co.uk`` are both ``acme.co.uk``), found with ``tldextract`` and the Public
Suffix List including its private section, so ``acme.wixsite.com`` and ``acme.github.io`` each stay one company's.
A few shared hosts do not identify a company (:data:`SHARED_DOMAINS`: social networks, Google Maps/Sites, link
shorteners): their websites give no domain and the name key decides.  Site builders that give each customer a
sub-domain but are not on the PSL (:data:`TENANT_SUFFIXES`) keep the customer's label: ``acme.wordpress.com``.

Offline
    The PSL comes from the snapshot inside ``tldextract`` (no download, no disk cache): an import never waits
    on the network, and the same file gives the same keys on every machine with the same package version.
"""

from __future__ import annotations

import threading
from typing import Final

import tldextract

from core.company_checks import normalise_website

__all__ = ["SHARED_DOMAINS", "TENANT_SUFFIXES", "company_domain", "registrable_domain"]

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
