"""Which Prefect flow runs belong to bulk actions that are not finished, and so must never be deleted.

A bulk action is unfinished while its status is pending, running, paused or waiting (``BulkActionStatus.finished``
is false): it may still be resumed, taken over or continued by another round, and its flow runs are the trail
that resumption, take-over (``flows.bulk_record``) and the cleanup's check for dead runs follow.  Its flow runs are
recorded in three places, all read here: the run driving it now (``bulk_actions.flow_run_id``), every run that
ever drove it (``parameters['flow_runs']``, appended by ``open_action`` on each rerun and each LLM round), and
the runs driving its shards (``bulk_action_shards.flow_run_id``).

Prefect-free: ``flows.flow_run_retention`` asks Prefect which runs are old and deletes all but these.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.maintenance import UNFINISHED
from core.schema import BulkAction, BulkActionShard


def flow_runs_of_unfinished_actions(session: Session) -> set[str]:
    """Every flow run id recorded on an unfinished bulk action (as lower-case UUID strings)."""
    kept: set[str] = set()
    rows = session.execute(
        select(BulkAction.flow_run_id, BulkAction.parameters).where(BulkAction.status.in_(UNFINISHED))
    )
    for flow_run_id, parameters in rows:
        if flow_run_id:
            kept.add(str(flow_run_id).lower())
        kept.update(str(run).lower() for run in ((parameters or {}).get("flow_runs") or []) if run)
    shard_runs = session.scalars(
        select(BulkActionShard.flow_run_id)
        .join(BulkAction, BulkAction.id == BulkActionShard.bulk_action_id)
        .where(BulkAction.status.in_(UNFINISHED), BulkActionShard.flow_run_id.is_not(None))
    )
    kept.update(str(run).lower() for run in shard_runs if run)
    return kept
