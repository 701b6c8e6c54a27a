"""Column mapping: explicit mappings both ways round, common headers, unmapped columns reported."""

from __future__ import annotations

import pytest

from core.column_mapping import map_columns
from core.errors import InputError


def test_common_headers_are_recognised_and_the_rest_reported() -> None:
    mapped = map_columns(["Company Name", "domain", "country_code", "Category", "NACE", "employees"])
    assert mapped.fields == {
        "Company Name": "name",
        "domain": "website",
        "country_code": "country",
        "Category": "industry",
        "NACE": "nace_code",
    }
    assert mapped.unmapped == ["employees"]
    assert mapped.apply({"Company Name": "Acme", "domain": "acme.nl", "employees": "5"})["name"] == "Acme"


def test_an_explicit_mapping_wins_in_either_direction() -> None:
    mapped = map_columns(["Firma", "Web", "name"], {"Firma": "name", "website": "Web"})
    assert mapped.fields == {"Firma": "name", "Web": "website"}
    assert mapped.unmapped == ["name"]  # 'name' would be recognised, but the mapping gave the field to 'Firma'


@pytest.mark.parametrize(
    ("columns", "mapping", "message"),
    [
        (["website", "country"], None, r"no name column: found \['website', 'country'\]"),
        (["a", "b"], {"a": "salary"}, "maps to no company field"),
        (["a", "b"], {"name": "c"}, "does not have"),
        (["a", "b"], {"a": "name", "b": "name"}, "two columns"),
    ],
)
def test_bad_mappings_and_missing_names_say_what_was_found(
    columns: list[str], mapping: dict[str, str] | None, message: str
) -> None:
    with pytest.raises(InputError, match=message):
        map_columns(columns, mapping)
