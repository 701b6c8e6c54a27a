"""Every bad bulk-action request gets a clear error naming what is wrong."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from core.catalog import get_action
from core.errors import (
    DuplicateCompanyIdsError,
    EmptyCompanyListError,
    InputError,
    TooManyCompaniesError,
    UnknownActionError,
    UnknownCompanyIdsError,
)
from core.validation import validate_request

KNOWN = set(range(1, 101))


def existing(ids: Sequence[int]) -> set[int]:
    return {i for i in ids if i in KNOWN}


def validate(action: str, ids: list[int], maximum: int = 1000) -> None:
    validate_request(action, ids, max_companies=maximum, existing_ids=existing)


def test_valid_request_returns_the_action_spec() -> None:
    spec = validate_request("generate_embeddings", [1, 2, 3], max_companies=10, existing_ids=existing)
    assert spec == get_action("generate_embeddings") and spec.call_size == 10


def test_unknown_action_lists_the_known_ones() -> None:
    with pytest.raises(UnknownActionError, match="'summon_unicorns'.*generate_embeddings"):
        validate("summon_unicorns", [1])


def test_empty_list() -> None:
    with pytest.raises(EmptyCompanyListError, match="empty"):
        validate("generate_embeddings", [])


def test_duplicates_are_named() -> None:
    with pytest.raises(DuplicateCompanyIdsError) as info:
        validate("generate_embeddings", [1, 2, 2, 3, 3, 3])
    assert info.value.duplicates == [2, 3]


def test_unknown_ids_are_reported_not_dropped() -> None:
    with pytest.raises(UnknownCompanyIdsError) as info:
        validate("generate_embeddings", [1, 5000, 2, 7000])
    assert info.value.unknown == [5000, 7000]
    assert "5000" in str(info.value) and "7000" in str(info.value)


def test_over_the_maximum() -> None:
    with pytest.raises(TooManyCompaniesError, match="11 companies exceed the maximum of 10"):
        validate("generate_embeddings", list(range(1, 12)), maximum=10)


@pytest.mark.parametrize("bad", [["1"], [1.5], [True]])
def test_non_integer_ids(bad: list[int]) -> None:
    with pytest.raises(InputError, match="integers"):
        validate("generate_embeddings", bad)


def test_long_unknown_lists_are_previewed() -> None:
    with pytest.raises(UnknownCompanyIdsError, match=r"\+5 more") as info:
        validate("generate_embeddings", list(range(1000, 1025)))
    assert len(info.value.unknown) == 25
