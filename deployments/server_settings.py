"""Prefect server settings for a server that records bulk actions: thousands of short task runs per action.

A task run reaches the server as three events (pending, running, completed).  Two server services turn them into
rows: the task run recorder (``task_runs`` and ``task_run_states``) and the event persister (``events`` and
``event_resources``).  Prefect's defaults have the recorder write every event in a transaction of its own
(``batch_size=1``) and the persister flush every 20 events.  Measured on this project's 2-core machine with a
local SQLite-backed server, that is 40 ms of server CPU per task run, a fifth of the CPU a batch of ten
embeddings needs on the same machine; writing up to 500 events per transaction, flushed every 2 s, brings it to
about 15 ms (``bench/``'s ``embed_pipeline_vs_raw`` went from about 0.73 to above 0.8 from this alone).

The price is freshness: task runs and events appear in the UI up to 2 s after they happen (flow runs, logs and
artifacts are unaffected; the persister's own default already delays events by up to 5 s).  Every setting is
only a default: a value already in the environment wins, so an operator can change any of them.

History stays bounded: the database vacuum runs its ``events`` pass (Prefect's default: events older than
``PREFECT_EVENTS_RETENTION_PERIOD``, 7 days) and its ``orphans`` pass (daily: logs and artifacts whose flow run is
gone).  Its ``flow_runs`` pass stays off on purpose: it would delete flow runs of unfinished bulk actions, so the
``cleanup`` flow deletes old flow runs itself and keeps those (``flows.flow_run_retention``); the orphan pass then
removes the artifacts those deletions leave behind.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping

#: environment variables of ``prefect server start`` (Prefect's settings; see ``prefect config view``)
BULK_ACTION_SERVER_SETTINGS: Mapping[str, str] = {
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "500",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL": "2",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_BATCH_SIZE": "500",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_FLUSH_INTERVAL": "2",
    "PREFECT_SERVER_SERVICES_DB_VACUUM_ENABLED": "events,orphans",
}


def recorder_flush_seconds() -> float:
    """How long the task run recorder may hold an event before writing it (this process's setting or ours)."""
    key = "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL"
    return float(os.environ.get(key, BULK_ACTION_SERVER_SETTINGS[key]))


def with_server_settings(env: MutableMapping[str, str] | None = None) -> MutableMapping[str, str]:
    """``env`` (default: this process's environment) with the settings above added where it has none."""
    target = os.environ if env is None else env
    for key, value in BULK_ACTION_SERVER_SETTINGS.items():
        target.setdefault(key, value)
    return target
