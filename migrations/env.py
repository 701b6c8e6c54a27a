"""Alembic environment: runs against the connection handed in by ``core.db.migrate`` or a URL.

``alembic -x url=postgresql+psycopg://... upgrade head`` works too; without either it uses ``BULKAI_DATABASE_URL``.
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import Connection

from core.db import get_engine
from core.schema import Base

target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or os.environ.get("BULKAI_DATABASE_URL")
    if not url:
        raise SystemExit("pass -x url=... or set BULKAI_DATABASE_URL")
    with get_engine(url).begin() as conn:
        _run(conn)


if context.is_offline_mode():
    raise SystemExit("offline (SQL script) migrations are not supported; run against a database")
run_migrations_online()
