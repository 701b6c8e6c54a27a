"""Give the work pool its priority queues, idempotently: ``high``, ``default`` and ``low``.

Prefect serves a pool's queues in priority order (1 first), so when runs back up behind busy workers, the
``high`` queue's runs start first.  A bulk action's run goes to the queue its priority maps to
(``core.slot_priority.queue_for``: 5 and above high, 0-4 default, below 0 low).  The pool's own ``default``
queue is kept (deployments name it) and given priority 2.  ``make deploy`` runs this after creating the pool;
running it again changes nothing.

    python -m deployments.work_queues [--pool bulkai-process]
"""

from __future__ import annotations

import argparse

from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound

from core.slot_priority import WORK_QUEUES

DEFAULT_POOL = "bulkai-process"


def ensure_work_queues(pool: str = DEFAULT_POOL) -> dict[str, int]:
    """Create the missing queues and set every queue's priority; returns name → priority as now set.

    Prefect keeps a pool's priorities unique by shifting the others when one is set, so they are set in
    order, most urgent first, and each only when it differs.
    """
    with get_client(sync_client=True) as client:
        for name, priority in sorted(WORK_QUEUES.items(), key=lambda item: item[1]):
            try:
                queue = client.read_work_queue_by_name(name, work_pool_name=pool)
            except ObjectNotFound:
                client.create_work_queue(
                    name,
                    work_pool_name=pool,
                    priority=priority,
                    description=f"bulk actions of {name} priority (core.slot_priority.queue_for)",
                )
                continue
            if queue.priority != priority:
                client.update_work_queue(queue.id, priority=priority)
        return {name: client.read_work_queue_by_name(name, work_pool_name=pool).priority for name in WORK_QUEUES}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pool", default=DEFAULT_POOL, help="the work pool (default: %(default)s)")
    args = parser.parse_args()
    for name, priority in ensure_work_queues(args.pool).items():
        print(f"work queue {args.pool}/{name}: priority {priority}")


if __name__ == "__main__":
    main()
