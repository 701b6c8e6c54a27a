"""The benchmark environment: isolated state, a temporary Prefect server, our blocks and limits.

Settings are environment variables set before Prefect is imported, so every benchmark (and any subprocess it
starts) sees the same temporary homes.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from deployments.server_settings import recorder_flush_seconds, with_server_settings

WORKDIR = Path(tempfile.mkdtemp(prefix="bulkai-bench-"))
os.environ.update(
    {
        "BULKAI_HOME": str(WORKDIR / "home"),
        "PREFECT_HOME": str(WORKDIR / "prefect"),
        "PREFECT_RESULTS_LOCAL_STORAGE_PATH": str(WORKDIR / "results"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        # the logging `make` sets up for flow runs (see the Makefile): flow runs log at INFO, batches' task
        # runs only their warnings and errors
        "PREFECT_LOGGING_LOGGERS_PREFECT_TASK_RUNS_LEVEL": "WARNING",
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


def wait_for_quiet_server(timeout: float = 120.0) -> float:
    """Wait until the temporary server has digested the previous benchmark's events; returns the seconds waited.

    The server records task runs and events in batches after the fact (``deployments/server_settings.py``); a
    benchmark started while it still works on the last one's thousands of events would share the CPU with it,
    which slows whatever it measures first (a raw baseline most of all).  Quiet is under 5% of a core over one
    recorder flush interval and a second more: a shorter window can fall between two flushes while events wait.
    """
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer._instances.get(None)
    process = getattr(server, "server_process", None)
    if process is None:
        return 0.0
    ticks = os.sysconf("SC_CLK_TCK")

    def cpu_seconds() -> float:
        fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / ticks

    window = recorder_flush_seconds() + 1.0
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        before = cpu_seconds()
        time.sleep(window)
        if cpu_seconds() - before < 0.05 * window:
            break
    return time.monotonic() - started


def seed(n: int, seed_value: int) -> list[int]:
    from blocks.loading import load_database
    from core.synthetic import seed_companies

    with load_database("default").session() as session:
        return seed_companies(session, n, seed=seed_value)
