"""The duplicate-detection keys stored on every company (``domain``, ``name_key``), and filling them in.

An import compares its rows with the database through two indexed columns (``core.importer``): the
registrable domain of the website and the name key.  Companies written by an import get them there; companies
that arrived another way (rows written before migration 0005, a team's own ETL, the seeding of tests and
benchmarks) are given theirs by :func:`fill_missing_keys`, which the import runs first.  It pages through
``name_key IS NULL`` on the ``(name_key, country)`` index, so on a database where every key is present it
costs one index probe.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from core.company_codes import country_code
from core.company_domains import company_domain
from core.errors import InvalidInputError
from core.name_keys import name_key
from core.schema import Company

PAGE = 5_000


def keys_of(name: str | None, website: str | None) -> dict[str, Any]:
    """``{"domain": ..., "name_key": ...}`` for a company as stored (an unfit website gives no domain)."""
    domain: str | None = None
    if website:
        try:
            domain = company_domain(website)
        except InvalidInputError:
            domain = None
    return {"domain": domain, "name_key": name_key(name or "")}


def match_country(country: str | None) -> str | None:
    """The country as duplicate detection compares it: ISO alpha-2 when it is recognisable, else as stored.

    Imports store alpha-2 codes; rows written another way may say ``Netherlands``.  Both must compare equal.
    """
    if not country:
        return None
    return country_code(country) or country


_FILL = (
    update(Company)
    .where(Company.id == bindparam("key_id"))
    .values(domain=bindparam("domain"), name_key=bindparam("name_key"))
    .execution_options(synchronize_session=False)
)


def fill_missing_keys(session: Session, page: int = PAGE) -> int:
    """Compute and store the keys of every company that has none; returns how many were filled."""
    filled = 0
    while True:
        rows = session.execute(
            select(Company.id, Company.name, Company.website).where(Company.name_key.is_(None)).limit(page)
        ).all()
        if not rows:
            return filled
        params = [{"key_id": cid, **keys_of(name, website)} for cid, name, website in rows]
        session.connection().execute(_FILL, params)
        filled += len(rows)
