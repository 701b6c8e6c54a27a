"""One real Prefect server for the whole session, real SQLite and PostgreSQL company databases.

The harness server starts once (10-30 s); result storage (the checkpoints) goes to a temporary directory because
the harness does not isolate it; flow heartbeats are off so a flow run does not wait on them; the server records
task runs in batches, as the project's local server does (``deployments/server_settings.py``).  PostgreSQL must be
up on 127.0.0.1:5432 (``.ci/run`` starts it): a missing database fails the run rather than skipping tests.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

_SESSION_DIR = Path(tempfile.mkdtemp(prefix="bulkai-tests-"))
os.environ["BULKAI_HOME"] = str(_SESSION_DIR / "home")
os.environ["PREFECT_HOME"] = str(_SESSION_DIR / "prefect")
os.environ["PREFECT_RESULTS_LOCAL_STORAGE_PATH"] = str(_SESSION_DIR / "results")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["DO_NOT_TRACK"] = "1"
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.pop("BULKAI_DATABASE_URL", None)

from deployments.server_settings import with_server_settings  # noqa: E402

with_server_settings()  # the harness server runs with the settings `make server` gives the local server

import psycopg  # noqa: E402
import pytest  # noqa: E402
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings  # noqa: E402
from prefect.testing.utilities import prefect_test_harness  # noqa: E402

from blocks.database import CompanyDatabase  # noqa: E402
from blocks.loading import clear_block_cache  # noqa: E402
from core.db import dispose_engines  # noqa: E402
from deployments.provision_limits import provision_limits  # noqa: E402
from deployments.register_blocks import register_blocks  # noqa: E402
from sandbox.server import SandboxServer  # noqa: E402

POSTGRES_ADMIN_URL = os.environ.get("BULKAI_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture(scope="session")
def session_dir() -> Path:
    return _SESSION_DIR


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this session, dropped afterwards."""
    name = f"bulkai_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    yield f"{base}/{name}".replace("postgresql://", "postgresql+psycopg://", 1)
    dispose_engines()
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def sqlite_url(session_dir: Path) -> str:
    return f"sqlite:///{session_dir / 'home' / 'companies.db'}"


@pytest.fixture(scope="session", autouse=True)
def prefect_server(sqlite_url: str, postgres_url: str) -> Iterator[None]:
    """The session's Prefect server with our block types, default documents and provider limits."""
    with temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        with prefect_test_harness(server_startup_timeout=90):
            register_blocks(database_url=sqlite_url)
            CompanyDatabase(url=postgres_url).save("postgres", overwrite=True)  # type: ignore[arg-type]
            provision_limits()
            yield
    clear_block_cache()


@pytest.fixture(params=["sqlite", "postgres"])
def database_name(request: pytest.FixtureRequest) -> str:
    """The name of a company-database block: each test using it runs on both backends."""
    return "default" if request.param == "sqlite" else "postgres"


@pytest.fixture
def db(database_name: str) -> CompanyDatabase:
    from blocks.loading import load_database

    return load_database(database_name)


@pytest.fixture(scope="session")
def provider_sandbox() -> Iterator[SandboxServer]:
    """The provider sandbox over real HTTP, shared by the flow tests (reset by each test that configures it)."""
    with SandboxServer(port=0) as server:
        yield server
