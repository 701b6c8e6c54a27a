"""Start or stop the local Prefect server (UI and API on 127.0.0.1:4200) in the background.

    python -m deployments.local_server start     # idempotent: returns at once if it already answers
    python -m deployments.local_server stop

It keeps its SQLite database under ``PREFECT_HOME`` and logs to ``$BULKAI_HOME/prefect-server.log``; it keeps
running after the demo so the UI can be opened.  A team points ``PREFECT_API_URL`` at a shared server instead.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from core.db import REPO_ROOT
from deployments.server_settings import with_server_settings

HOST = "127.0.0.1"
PORT = int(os.environ.get("BULKAI_PREFECT_PORT", "4200"))
API_URL = f"http://{HOST}:{PORT}/api"
UI_URL = f"http://{HOST}:{PORT}"


def _home() -> Path:
    home = Path(os.environ.get("BULKAI_HOME", REPO_ROOT / ".data"))
    home.mkdir(parents=True, exist_ok=True)
    return home


def is_up(api_url: str = API_URL) -> bool:
    try:
        return httpx.get(f"{api_url}/health", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def start(timeout: float = 180.0) -> str:
    """Start the server unless one answers already; returns the API URL once it is healthy."""
    if is_up():
        return API_URL
    log = (_home() / "prefect-server.log").open("ab")
    env = dict(with_server_settings({**os.environ}))
    env.update(PREFECT_SERVER_ANALYTICS_ENABLED="false", PREFECT_UI_API_URL=API_URL)
    env.pop("PREFECT_API_URL", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", HOST, "--port", str(PORT)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    (_home() / "prefect-server.pid").write_text(str(process.pid))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the Prefect server exited with {process.returncode}; see {log.name}")
        if is_up():
            return API_URL
        time.sleep(0.5)
    raise SystemExit(f"the Prefect server did not answer within {timeout:.0f} s; see {log.name}")


def stop() -> bool:
    pid_file = _home() / "prefect-server.pid"
    if not pid_file.exists():
        return False
    pid = int(pid_file.read_text())
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    pid_file.unlink()
    return True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["start", "stop"])
    args = parser.parse_args(argv)
    if args.command == "start":
        start()
        print(f"Prefect server up: UI {UI_URL}  API {API_URL}")
    else:
        print("stopped" if stop() else "no server started by this checkout")


if __name__ == "__main__":
    main()
