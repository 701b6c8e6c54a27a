"""What the Prefect server holds, as the operations report shows it: provider slots in use, and its history.

- **Provider slots**: every global concurrency limit named ``tag:<tag>`` (``deployments.provision_limits``), with
  its active slots.
- **Database size**: a flow run talks to the server's API, not its database, so it can only know the database
  when its own environment names it.  The URL comes from the Prefect setting ``server.database.connection_url``
  (``PREFECT_SERVER_DATABASE_CONNECTION_URL`` or its older name ``PREFECT_API_DATABASE_CONNECTION_URL``):
  SQLite is measured as the file's size (with its ``-wal`` file), PostgreSQL with ``pg_database_size``.  Without
  the setting, a server started on this machine with this ``PREFECT_HOME`` (``make server``) keeps
  ``$PREFECT_HOME/prefect.db``: that file is measured when the API is on this machine and the file exists, and
  the report says the path was assumed.  Anything else is reported as unknown rather than guessed.  The URL is
  never logged or shown (it may hold a password).
- **Runs**: flow runs and task runs, counted by the API's count endpoints.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import sqlalchemy as sa
from prefect.client.orchestration import SyncPrefectClient
from prefect.settings import get_current_settings
from sqlalchemy.engine import make_url

from core.operations_markdown import PrefectDatabaseSize, PrefectFigures, SlotUsage

_PAGE = 200
_LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def provider_slots(client: SyncPrefectClient) -> list[SlotUsage]:
    found: list[SlotUsage] = []
    offset = 0
    while True:
        page = client.read_global_concurrency_limits(limit=_PAGE, offset=offset)
        found += [
            SlotUsage(limit.name.removeprefix("tag:"), int(limit.limit), int(limit.active_slots), bool(limit.active))
            for limit in page
            if limit.name.startswith("tag:")
        ]
        if len(page) < _PAGE:
            return sorted(found, key=lambda s: s.tag)
        offset += _PAGE


def _sqlite_size(path: Path) -> int | None:
    if not path.is_file():
        return None
    wal = path.with_name(path.name + "-wal")
    return path.stat().st_size + (wal.stat().st_size if wal.is_file() else 0)


def database_size() -> PrefectDatabaseSize:
    settings = get_current_settings()
    secret = settings.server.database.connection_url
    default = Path(settings.home).expanduser() / "prefect.db"
    if secret is None or secret.get_secret_value() == f"sqlite+aiosqlite:///{default}":
        # nothing set: Prefect fills in the default under this process's PREFECT_HOME, true only of a local server
        api = urlparse(settings.api.url or "")
        size = _sqlite_size(default)
        if api.hostname in _LOCAL_HOSTS and size is not None:
            return PrefectDatabaseSize(
                "sqlite", size, "file size of $PREFECT_HOME/prefect.db, assumed (no database URL is set here)"
            )
        return PrefectDatabaseSize(
            "unknown", None, "unknown: the server's database URL is not set in this flow run's environment"
        )
    url = make_url(secret.get_secret_value())
    if url.get_backend_name() == "sqlite":
        path = Path(url.database or "")
        size = _sqlite_size(path) if url.database and ":memory:" not in url.database else None
        how = "file size of the SQLite database named by the Prefect database setting"
        return PrefectDatabaseSize("sqlite", size, how if size is not None else "unknown: no such file here")
    if url.get_backend_name() == "postgresql":
        engine = sa.create_engine(url.set(drivername="postgresql+psycopg"), poolclass=sa.NullPool)
        try:
            with engine.connect() as connection:
                size = connection.execute(sa.text("SELECT pg_database_size(current_database())")).scalar_one()
        except sa.exc.SQLAlchemyError as exc:
            return PrefectDatabaseSize(
                "postgresql", None, f"unknown: the database did not answer ({type(exc).__name__})"
            )
        finally:
            engine.dispose()
        return PrefectDatabaseSize("postgresql", int(size), "pg_database_size of the Prefect database")
    return PrefectDatabaseSize(url.get_backend_name(), None, "unknown: not a SQLite or PostgreSQL database")


def task_run_count(client: SyncPrefectClient) -> int:
    response = client.request("POST", "/task_runs/count", json={})
    return int(response.json())


def prefect_figures(client: SyncPrefectClient) -> PrefectFigures:
    return PrefectFigures(
        slots=provider_slots(client),
        database=database_size(),
        flow_runs=client.count_flow_runs(),
        task_runs=task_run_count(client),
    )
