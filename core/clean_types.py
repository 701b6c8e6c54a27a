"""Column types whose values are cleaned on the way into the database (``core.company_checks.clean_text``).

``CleanString(n)`` and ``CleanText()`` are ``String(n)`` and ``Text`` in the database (so switching a column to
them changes no DDL and needs no migration) that drop NUL and other control characters (tab, newline and carriage
return stay) and NFC-normalise every value they bind.  PostgreSQL refuses NUL in text outright; SQLite would
store it and hand it to PostgreSQL on the next export.  Because the cleaning sits in the column type it covers
every write that binds parameters: ORM flushes, ``session.execute(insert(Model), rows)``, Core ``insert`` /
``update`` of the table (``values(...)``, ``bindparam``, executemany) and comparisons in WHERE clauses (so a lookup
by a dirty value finds the clean row).  Only raw SQL (``text()`` with untyped parameters, a driver cursor, COPY)
goes around it.

Speed: SQLAlchemy calls the processor once per value; a value with nothing to clean costs one precompiled
regex scan (plus an NFC quick check when it is not ASCII) and is passed on as the same object.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import String, Text, TypeDecorator
from sqlalchemy.engine import Dialect

from core.company_checks import clean_text


def _clean_bound(value: Any, _str: type[str] = str) -> Any:
    # Runs once per bound text value, millions of times in a bulk write: clean_text's ASCII fast path is inlined
    # (clean ASCII text and None never make a second call) and ``str`` is bound as a local.
    if value.__class__ is _str:
        if value.isascii() and value.isprintable():
            return value
        return clean_text(value)
    if value is None or not isinstance(value, str):
        return value
    return clean_text(value)  # a str subclass


class CleanString(TypeDecorator[str]):
    """``String(length)`` that stores :func:`~core.company_checks.clean_text` of every value."""

    impl = String
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return _clean_bound(value)  # type: ignore[no-any-return]

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any]:
        # The same as process_bind_param, minus TypeDecorator's generic wrapper (one Python call per value
        # instead of three on the bulk-write path).  String's own bind processor is None on our dialects;
        # should one ever have one, it still runs after the cleaning.
        impl_processor = self.impl_instance.bind_processor(dialect)
        if impl_processor is None:
            return _clean_bound
        return lambda value: impl_processor(_clean_bound(value))

    @property
    def python_type(self) -> type[str]:
        return str  # TypeDecorator does not take it from the impl (it would say ``object``)


class CleanText(CleanString):
    """``Text`` that stores :func:`~core.company_checks.clean_text` of every value."""

    impl = Text
    cache_ok = True
