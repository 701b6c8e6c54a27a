"""Validation of a bulk-action request, before anything is written.

Every problem is reported with the ids concerned, so a user fixes the selection instead of guessing; nothing is
dropped silently (an id that is not in the database stops the request and is named in the error).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence

from core.catalog import ActionSpec, get_action
from core.errors import (
    DuplicateCompanyIdsError,
    EmptyCompanyListError,
    InputError,
    TooManyCompaniesError,
    UnknownCompanyIdsError,
)


def validate_request(
    action: str,
    company_ids: Sequence[int],
    *,
    max_companies: int,
    existing_ids: Callable[[Sequence[int]], Iterable[int]],
) -> ActionSpec:
    """Check an action request; ``existing_ids`` answers which of the given ids are in the database."""
    spec = get_action(action)
    if not company_ids:
        raise EmptyCompanyListError()
    bad_types = [i for i in company_ids if isinstance(i, bool) or not isinstance(i, int)]
    if bad_types:
        raise InputError(f"company ids must be integers; got {bad_types[:10]!r}")
    if len(company_ids) > max_companies:
        raise TooManyCompaniesError(len(company_ids), max_companies)
    duplicates = sorted(i for i, n in Counter(company_ids).items() if n > 1)
    if duplicates:
        raise DuplicateCompanyIdsError(duplicates)
    found = set(existing_ids(company_ids))
    unknown = [i for i in company_ids if i not in found]
    if unknown:
        raise UnknownCompanyIdsError(unknown)
    return spec
