"""Engines, sessions and migrations for the company database.

SQLite is the embedded default: a file created on first use, in WAL mode with a busy timeout so the flow and its
batch threads can write side by side.  PostgreSQL comes in through a ``postgresql+psycopg://`` URL.  The schema is
owned by Alembic (``migrations/``); ``migrate()`` brings any database to head and is safe to call every start.
"""

from __future__ import annotations

import functools
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

REPO_ROOT = Path(__file__).resolve().parent.parent
MIGRATIONS_DIR = REPO_ROOT / "migrations"

_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()
_migrated: set[str] = set()


@functools.lru_cache(maxsize=64)
def normalise_url(url: str) -> str:
    """Accept the URLs people paste (``postgresql://``) and pick psycopg 3, the driver we ship.

    Cached: every session asks for its engine by URL, and parsing a URL is most of that lookup's cost.
    """
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def create_db_engine(url: str, *, echo: bool = False) -> Engine:
    """A new engine for ``url``; SQLite files get their directory created and the pragmas above."""
    url = normalise_url(url)
    parsed = make_url(url)
    kwargs: dict[str, Any] = {"echo": echo, "future": True}
    if parsed.get_backend_name() == "sqlite":
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            # every batch thread, the engine's loop and its progress monitor hold a connection at once; with
            # SQLAlchemy's default of 5 the rest were opened and closed (pragmas and all) for every batch
            kwargs.update(pool_size=20, max_overflow=20)
    else:
        # prepare_threshold=None: no server-side prepared statements.  psycopg prepares a query after its fifth
        # run, and PostgreSQL then settles on a generic plan picked while an action's tables were small: the
        # batch's embedding read scanned every vector of the model and the outcome read every row of the
        # action, a cost per call that grew with the action (measured at 20,000 companies).
        kwargs.update(pool_pre_ping=True, pool_size=10, max_overflow=10, connect_args={"prepare_threshold": None})
    engine = create_engine(url, **kwargs)
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def get_engine(url: str, *, echo: bool = False) -> Engine:
    """The process-wide engine for ``url``: pools are per process, never per task."""
    key = normalise_url(url)
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            engine = _engines[key] = create_db_engine(key, echo=echo)
        return engine


def dispose_engines() -> None:
    with _engines_lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
        _migrated.clear()
        _factories.clear()
        _sqlite_locks.clear()


_sqlite_locks: dict[int, threading.Lock] = {}


def _sqlite_lock(engine: Engine) -> threading.Lock | None:
    """One in-process lock per SQLite engine.

    SQLite admits one writer at a time and makes the others poll with growing sleeps (its busy handler), which
    wastes most of the time when a flow's batch threads write at once; queueing them on a Python lock instead
    hands the database over the moment it is free.
    """
    if engine.dialect.name != "sqlite":
        return None
    with _engines_lock:
        return _sqlite_locks.setdefault(id(engine), threading.Lock())


_factories: weakref.WeakKeyDictionary[Engine, sessionmaker[Session]] = weakref.WeakKeyDictionary()


def _session_factory(engine: Engine) -> sessionmaker[Session]:
    """One session factory per engine (keyed weakly: an engine that goes away takes its factory along)."""
    with _engines_lock:
        factory = _factories.get(engine)
        if factory is None:
            factory = _factories[engine] = sessionmaker(engine, expire_on_commit=False)
        return factory


@contextmanager
def session_scope(engine: Engine, *, readonly: bool = False) -> Iterator[Session]:
    """A transaction: commits on success, rolls back on error.

    ``readonly`` sessions skip SQLite's in-process writer lock: in WAL mode readers never block the writer nor
    wait for it, so a batch that only reads (its companies, their current hashes) does not queue behind the
    batches that are committing.
    """
    factory = _session_factory(engine)
    lock = None if readonly else _sqlite_lock(engine)
    if lock is None:
        with factory.begin() as session:
            yield session
        return
    with lock, factory.begin() as session:
        yield session


@contextmanager
def rehearsal_scope(engine: Engine) -> Iterator[Session]:
    """A read-write transaction that is always rolled back: a dry run that must see its own writes (an import's
    later chunks matching the companies its earlier chunks would insert) and leave nothing behind."""
    lock = _sqlite_lock(engine)
    with lock if lock is not None else nullcontext(), _session_factory(engine)() as session:
        try:
            yield session
        finally:
            session.rollback()


def migrate(url: str) -> None:
    """Upgrade the database at ``url`` to the newest migration (once per process and URL)."""
    key = normalise_url(url)
    if key in _migrated:
        return
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    engine = get_engine(key)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    _migrated.add(key)
