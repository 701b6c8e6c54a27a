"""The company database block: one URL (a secret, it may hold a password) and the engine it builds."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar

from prefect.blocks.core import Block
from pydantic import Field, SecretStr
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from core.db import REPO_ROOT, get_engine, migrate, rehearsal_scope, session_scope


def default_database_url() -> str:
    """``BULKAI_DATABASE_URL`` if set, else a SQLite file under ``BULKAI_HOME`` (default ``./.data``)."""
    url = os.environ.get("BULKAI_DATABASE_URL")
    if url:
        return url
    home = Path(os.environ.get("BULKAI_HOME", REPO_ROOT / ".data"))
    return f"sqlite:///{home / 'companies.db'}"


class CompanyDatabase(Block):
    """Where the companies, embeddings, bulk actions and dead jobs live (SQLite or PostgreSQL)."""

    _block_type_name: ClassVar[str] = "Company Database"
    _block_type_slug: ClassVar[str] = "company-database"
    _description: ClassVar[str] = "SQLAlchemy URL of the company database (SQLite file or postgresql+psycopg)."

    url: SecretStr = Field(
        default_factory=lambda: SecretStr(default_database_url()),
        description="SQLAlchemy URL, e.g. sqlite:////data/companies.db or postgresql+psycopg://user:pw@host/db",
    )
    echo: bool = Field(default=False, description="Log every SQL statement (debugging only).")

    def get_engine(self) -> Engine:
        """The process-wide engine for this URL, migrated to the newest schema on first use."""
        url = self.url.get_secret_value()
        migrate(url)
        return get_engine(url, echo=self.echo)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A read-write transaction (commits on success)."""
        with session_scope(self.get_engine()) as session:
            yield session

    @contextmanager
    def read_session(self) -> Iterator[Session]:
        """A transaction that only reads: on SQLite it never queues behind the writers."""
        with session_scope(self.get_engine(), readonly=True) as session:
            yield session

    @contextmanager
    def rehearsal_session(self) -> Iterator[Session]:
        """A read-write transaction that is always rolled back (dry runs; see ``core.db.rehearsal_scope``)."""
        with rehearsal_scope(self.get_engine()) as session:
            yield session

    @property
    def backend(self) -> str:
        return make_url(self.url.get_secret_value()).get_backend_name()

    def safe_url(self) -> str:
        """The URL with its password masked: what may appear in logs and artifacts."""
        return make_url(self.url.get_secret_value()).render_as_string(hide_password=True)
