"""One bulk action shared by two workers (``shards=2``), on the whole system deployed as a user deploys it.

The deployed system of the end-to-end tests (``tests/e2e/deployed.py``: ``prefect server start`` on PostgreSQL,
``make deploy``'s commands, two process workers with ``--limit 1``, the provider sandbox) runs one sharded
``generate_embeddings`` over 80 companies on a sandbox embeddings block (one call of 10 texts per batch, a limit
of 2 batches in flight shared by the shards, 300 ms a call), started from Python as a user starts it.  Counted
where it lands:

* ``shard_duplicate_calls``: company texts the sandbox saw more than once (every text it was sent is recorded in
  full, not only the first 200 characters its request log keeps);
* ``shard_workers_used``: distinct workers that ran a shard;
* ``shard_seconds``: wall time of the parent, from its start to its exit (includes the children's start-up).

The temporary Prefect server ``python -m bench`` starts is not used: the deployed system has its own.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

PARENT = "bench-shards"  # the parent process's name, and the action's created_by


def run() -> dict[str, float]:
    from core.schema import BulkActionStatus
    from tests.e2e.deployed import (
        SHARDED,
        SHARDS,
        WORKERS,
        action_created_by,
        deployed_system,
        embedding_texts,
        shard_rows,
        start_sharded_embeddings,
        stop,
        wait_for_exit,
    )

    with tempfile.TemporaryDirectory(prefix="bulkai-bench-shards-") as home, deployed_system(Path(home)) as system:
        ids = system.companies(SHARDED)
        texts = embedding_texts(system.db, ids)
        system.sandbox.configure("openai", latency_ms=300)
        since = time.time()
        started = time.perf_counter()
        start_sharded_embeddings(system, PARENT, ids)
        try:
            code = wait_for_exit(system, PARENT)
        finally:
            stop(system, PARENT)
        seconds = time.perf_counter() - started
        if code != 0:
            raise RuntimeError(f"the parent exited {code}:\n{system.processes.tail(PARENT, 40)}")
        record = action_created_by(system.db, PARENT)
        assert record is not None and record.status is BulkActionStatus.COMPLETED, record
        assert (record.total, record.succeeded) == (len(ids), len(ids)), record
        rows = shard_rows(system.db, record.id)
        assert len(rows) == SHARDS and all(r.flow_run_id for r in rows), rows
        workers = {system.worker_of(str(r.flow_run_id)) for r in rows} - {None}
        assert workers <= set(WORKERS), workers
        seen = system.texts_embedded(since)
        missing = [cid for cid in ids if not seen[texts[cid]]]
        assert not missing, f"{len(missing)} companies never reached the sandbox"
        return {
            "shard_duplicate_calls": float(sum(1 for cid in ids if seen[texts[cid]] > 1)),
            "shard_workers_used": float(len(workers)),
            "shard_seconds": seconds,
        }
