"""Which column of an import file feeds which company field: the caller's mapping, then common header names.

Files come from CRMs, spreadsheets and data vendors, each naming columns its own way (``company_name``,
``Company``, ``domain``, ``url``, ``country_code``, ``category``...).  :func:`map_columns` takes an explicit
mapping first (file column → field, or field → file column; both spellings are accepted because people write
both), then recognises common headers case- and punctuation-insensitively.  Columns it cannot place are
*reported* in the import's summary, never silently dropped, and a file without a name column is refused with
what was found and what was expected.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from core.company_rows import FIELDS
from core.errors import InputError

#: the company fields an import can fill: the fields a row holds (``core.company_rows``)
IMPORT_FIELDS: tuple[str, ...] = tuple(FIELDS)
REQUIRED_FIELDS: tuple[str, ...] = ("name",)

#: header spellings recognised without a mapping, after folding (lowercase, only letters and digits)
ALIASES: dict[str, tuple[str, ...]] = {
    "name": ("name", "companyname", "company", "organisation", "organization", "organisationname",
             "organizationname", "legalname", "businessname", "accountname", "firm", "bedrijfsnaam", "naam"),
    "website": ("website", "web", "url", "homepage", "site", "websiteurl", "domain", "companydomain",
                "companywebsite", "www"),
    "industry": ("industry", "category", "sector", "vertical", "industryname", "branche"),
    "nace_code": ("nacecode", "nace", "nacerev2", "sbi", "sbicode", "naceid"),
    "country": ("country", "countrycode", "countryname", "countryiso", "iso2", "nation", "land", "hqcountry"),
    "activity_description": ("activitydescription", "description", "activity", "about", "summary",
                             "businessdescription", "companydescription", "omschrijving"),
    "ownership_type": ("ownershiptype", "ownership", "legalform", "companytype", "owner"),
    "priority": ("priority", "rank"),
}  # fmt: skip
_FOLD = re.compile(r"[^a-z0-9]+")
_BY_ALIAS: dict[str, str] = {alias: field for field, aliases in ALIASES.items() for alias in aliases}


def fold_header(header: str) -> str:
    return _FOLD.sub("", header.casefold())


@dataclass(frozen=True)
class ColumnMap:
    """file column → company field, plus the file's columns that feed nothing."""

    fields: dict[str, str]
    unmapped: list[str]

    def apply(self, row: Mapping[str, str | None]) -> dict[str, str | None]:
        """One raw row as ``{field: value}``."""
        return {field: row.get(column) for column, field in self.fields.items()}


def map_columns(columns: Sequence[str], mapping: Mapping[str, str] | None = None) -> ColumnMap:
    """Place each file column; raises ``InputError`` for a bad mapping or a missing required field."""
    present = list(columns)
    chosen: dict[str, str] = {}
    for key, value in (mapping or {}).items():
        if key in present and value in IMPORT_FIELDS:
            column, field = key, value
        elif value in present and key in IMPORT_FIELDS:
            column, field = value, key
        elif key in IMPORT_FIELDS or value in IMPORT_FIELDS:
            missing = value if key in IMPORT_FIELDS else key
            raise InputError(f"column_mapping names column {missing!r}, which the file does not have; it has {present}")
        else:
            raise InputError(
                f"column_mapping {key!r}: {value!r} maps to no company field; the fields are {list(IMPORT_FIELDS)}"
            )
        if field in chosen.values():
            raise InputError(f"column_mapping maps two columns to {field!r}")
        chosen[column] = field
    for column in present:
        if column in chosen:
            continue
        alias = _BY_ALIAS.get(fold_header(column))
        if alias is not None and alias not in chosen.values():
            chosen[column] = alias
    missing_fields = [f for f in REQUIRED_FIELDS if f not in chosen.values()]
    if missing_fields:
        raise InputError(
            f"the file has no {' or '.join(missing_fields)} column: found {present}; expected one of "
            f"{list(ALIASES['name'])[:6]}... or a column_mapping such as {{'Your Column': 'name'}}"
        )
    ordered = {column: chosen[column] for column in present if column in chosen}
    return ColumnMap(fields=ordered, unmapped=[c for c in present if c not in chosen])
