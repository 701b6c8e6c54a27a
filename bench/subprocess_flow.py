"""Run a flow in a process of its own, as a worker would: its result, its own wall time and its peak RSS.

The flow's code runs under ``python -c`` with the bench environment; it prints one marked JSON line with the
flow's result, the seconds the flow call took (``perf_counter`` around it, so Python's and Prefect's import
time is not counted) and the process's ``VmHWM`` (its own peak RSS: see ``bench/bench_scale.py`` for why not
``ru_maxrss``).  ``on_poll`` is called every ``poll_seconds`` while the process runs and may kill it (the
resume benchmarks) by returning True; ``expect_exit`` is the exit code of a process meant to die (a failpoint).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.environment import WORKDIR

REPO_ROOT = Path(__file__).resolve().parent.parent
MARKER = "@@bench-flow@@"


@dataclass(frozen=True)
class FlowProcess:
    result: dict[str, Any] | None  # None when the process was killed
    seconds: float
    peak_rss_mb: float


def run_flow_process(
    setup: str,
    call: str,
    *,
    name: str,
    timeout: float = 1800.0,
    on_poll: Callable[[], bool] | None = None,
    poll_seconds: float = 0.2,
    expect_exit: int | None = None,
) -> FlowProcess:
    """Run ``setup`` (imports) then ``result = <call>`` in a new process; see the module docstring."""
    from prefect.settings import PREFECT_API_URL

    code = (
        "import dataclasses, json, time\n"
        f"{setup}\n"
        "started = time.perf_counter()\n"
        f"result = {call}\n"
        "seconds = time.perf_counter() - started\n"
        "with open('/proc/self/status') as status:\n"
        "    hwm = next(int(line.split()[1]) for line in status if line.startswith('VmHWM:'))\n"
        "body = dataclasses.asdict(result) if dataclasses.is_dataclass(result) else {'value': repr(result)}\n"
        f"print({MARKER!r} + json.dumps({{'result': body, 'seconds': seconds, 'vm_hwm_kb': hwm}}, default=str))\n"
    )
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value()), "PYTHONPATH": str(REPO_ROOT)}
    stdout_path, stderr_path = WORKDIR / f"{name}.out", WORKDIR / f"{name}.err"
    with stdout_path.open("wb") as stdout, stderr_path.open("wb") as stderr:
        started = time.perf_counter()
        child = subprocess.Popen(
            [sys.executable, "-c", code], env=env, cwd=REPO_ROOT, stdout=stdout, stderr=stderr, start_new_session=True
        )
        killed = False
        try:
            while child.poll() is None:
                if time.perf_counter() - started > timeout:
                    raise TimeoutError(f"{name} did not finish in {timeout:.0f} s")
                if on_poll is not None and on_poll():
                    os.killpg(child.pid, signal.SIGKILL)
                    child.wait()
                    killed = True
                    break
                time.sleep(poll_seconds)
        except BaseException:
            with suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
            child.wait()
            raise
    if killed or (expect_exit is not None and child.returncode == expect_exit):
        return FlowProcess(None, time.perf_counter() - started, 0.0)  # killed, or died where it was meant to
    lines = [line for line in stdout_path.read_text(errors="replace").splitlines() if line.startswith(MARKER)]
    if child.returncode != 0 or not lines:
        errors = stderr_path.read_text(errors="replace")
        print(errors[-3000:], file=sys.stderr)
        raise RuntimeError(f"{name}: the flow-run process exited {child.returncode} (all of it: {stderr_path})")
    body = json.loads(lines[-1][len(MARKER) :])
    return FlowProcess(body["result"], float(body["seconds"]), body["vm_hwm_kb"] / 1024)
