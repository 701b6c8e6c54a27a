"""The benchmark environment: isolated state, a temporary Prefect server, our blocks and limits.

Settings are environment variables set before Prefect is imported, so every benchmark (and any subprocess it
starts) sees the same temporary homes.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from deployments.server_settings import with_server_settings

WORKDIR = Path(tempfile.mkdtemp(prefix="bulkai-bench-"))
os.environ.update(
    {
        "BULKAI_HOME": str(WORKDIR / "home"),
        "PREFECT_HOME": str(WORKDIR / "prefect"),
        "PREFECT_RESULTS_LOCAL_STORAGE_PATH": str(WORKDIR / "results"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "DO_NOT_TRACK": "1",
        "HF_HUB_OFFLINE": "1",
    }
)
# The temporary server runs with the settings `make server` gives the local server (deployments/server_settings.py).
with_server_settings()
os.environ.pop("BULKAI_DATABASE_URL", None)
os.environ.pop("PREFECT_API_URL", None)


@contextmanager
def prefect_environment() -> Iterator[Path]:
    """A temporary Prefect server with the project's blocks and default limits registered."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    from deployments.provision_limits import provision_limits
    from deployments.register_blocks import register_blocks

    with temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        with prefect_test_harness(server_startup_timeout=120):
            register_blocks()
            provision_limits()
            yield WORKDIR


def seed(n: int, seed_value: int) -> list[int]:
    from blocks.loading import load_database
    from core.synthetic import seed_companies

    with load_database("default").session() as session:
        return seed_companies(session, n, seed=seed_value)
