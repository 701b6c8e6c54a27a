"""Import files whose every row's truth is known: new companies, their duplicates, and rows that must be refused.

A duplicate is a variant of an earlier row of the same file, in one of two ways a real file carries them:

* a **domain variant**: the website written differently (``www.`` added or dropped, ``http``, a path, upper
  case) with the name changed too (legal form dropped or swapped, casing, a typo): the domain must find it;
* a **name variant**: no website, the name written differently (legal form, casing, ``&``/``and``,
  punctuation, accents) and the country spelled another way (``NL``, ``NLD``, ``Netherlands``): the name key
  and the country must find it.

Invalid rows have an empty name, a website that is not a public http(s) URL, or an unknown country.
"""

from __future__ import annotations

import csv
import gzip
import io
import random
import unicodedata
from dataclasses import dataclass

from core.synthetic import generate_companies

COLUMNS = ["company_name", "url", "country", "category", "nace", "description"]
_LEGAL_SWAPS = {" B.V.": " BV", " Ltd": " Limited", " GmbH": "", " S.A.": " SA", " AB": " Aktiebolag", " Oy": ""}
_COUNTRY_SPELLINGS = {"Netherlands": ("NL", "NLD"), "United Kingdom": ("GB", "UK"), "Germany": ("DE", "DEU")}
_BAD_WEBSITES = ("javascript:alert(1)", "file:///etc/passwd", "http://127.0.0.1:22", "http://10.0.0.5/", "ftp://x.org")


@dataclass(frozen=True)
class ImportFile:
    content: bytes  # CSV, gzip-compressed
    rows: int
    originals: int
    duplicate_rows: frozenset[int]  # 1-based row numbers that repeat an earlier row's company
    invalid_rows: frozenset[int]


def _strip_accents(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def _name_variant(rng: random.Random, name: str) -> str:
    for legal, swap in _LEGAL_SWAPS.items():
        if name.endswith(legal):
            name = name[: -len(legal)] + swap
            break
    choice = rng.random()
    if choice < 0.3:
        name = name.upper()
    elif choice < 0.5:
        name = name.replace(" & ", " and ") if " & " in name else name.replace(" and ", " & ")
    elif choice < 0.7:
        name = _strip_accents(name)
    elif choice < 0.85:
        name = name.replace(" ", "  ") + "."
    return name


def _typo(rng: random.Random, name: str) -> str:
    i = rng.randrange(1, max(2, len(name) - 1))
    return name[:i] + name[i + 1 :] if name[i].isalpha() else name


def _website_variant(rng: random.Random, website: str) -> str:
    host = website.split("://", 1)[1]
    options = (
        lambda: host.removeprefix("www."),
        lambda: "http://" + host,
        lambda: f"https://{host}/contact",
        lambda: "https://" + host.upper(),
        lambda: "https://shop." + host.removeprefix("www."),
    )
    return rng.choice(options)()


def _country_variant(rng: random.Random, country: str) -> str:
    return rng.choice(_COUNTRY_SPELLINGS.get(country, (country, country.upper())))


def build(rows: int, *, duplicate_share: float, invalid_share: float, seed: int) -> ImportFile:
    """A file of ``rows`` rows: originals, ``duplicate_share`` variants of them, ``invalid_share`` bad rows."""
    rng = random.Random(seed)
    duplicates = int(rows * duplicate_share)
    invalid = int(rows * invalid_share)
    originals = rows - duplicates - invalid
    companies = generate_companies(originals, seed=seed, duplicate_fraction=0.0)
    records: list[tuple[float, list[str], str]] = []  # (place in the file, values, kind)
    for i, c in enumerate(companies):
        records.append((i, [c.name, c.website, c.country, c.industry, c.nace_code, c.activity_description], "original"))
    for n in range(duplicates):
        i = rng.randrange(originals)
        c = companies[i]
        if n % 2 == 0:
            name = _typo(rng, c.name) if rng.random() < 0.2 else _name_variant(rng, c.name)
            values = [name, _website_variant(rng, c.website), c.country, c.industry, c.nace_code, ""]
        else:
            values = [_name_variant(rng, c.name), "", _country_variant(rng, c.country), c.industry, "", ""]
        records.append((rng.uniform(i + 0.5, originals), values, "duplicate"))  # always after its original
    for n in range(invalid):
        c = companies[rng.randrange(originals)]
        kind = n % 3
        if kind == 0:
            values = ["  ", c.website, c.country, "", "", ""]
        elif kind == 1:
            values = [f"{c.name} {n}", rng.choice(_BAD_WEBSITES), c.country, "", "", ""]
        else:
            values = [f"{c.name} {n}", "", "Atlantis", "", "", ""]
        records.append((rng.uniform(0, originals), values, "invalid"))
    records.sort(key=lambda record: record[0])
    duplicate_rows, invalid_rows = set(), set()
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for number, (_, values, kind) in enumerate(records, start=1):
        writer.writerow(values)
        if kind == "duplicate":
            duplicate_rows.add(number)
        elif kind == "invalid":
            invalid_rows.add(number)
    return ImportFile(
        content=gzip.compress(out.getvalue().encode("utf-8"), compresslevel=6),
        rows=rows,
        originals=originals,
        duplicate_rows=frozenset(duplicate_rows),
        invalid_rows=frozenset(invalid_rows),
    )
