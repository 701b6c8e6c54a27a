"""Pausing a bulk action frees its worker: the flow run is suspended, not a process sleeping on a slot.

A pause comes from ``pause_bulk_action`` (the UI's deployment form or ``prefect deployment run``) or from a
budget the next call could pass.  Either way the engine starts no new batch, lets the batches in flight finish
(each commits what it paid for), records the action ``paused`` with the reason, and then suspends its flow
run: the process exits, the provider slots go back, and the run waits in Prefect as *Suspended*.  Resuming it
(the UI's Resume button, or ``resume_bulk_action``, which can also raise the budget) reschedules the same flow
run; it starts again from the top, finds its action by its flow-run id, and every batch that had completed
comes back from its checkpoint: zero repeated paid calls.

A flow run that has no deployment cannot be rescheduled by a worker, so it is not suspended: it ends
Completed with the action ``paused``, and a rerun with ``bulk_action_id`` resumes it (the same checkpoints).
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from prefect import get_run_logger
from prefect.client.schemas.objects import State
from prefect.context import FlowRunContext
from prefect.flow_runs import suspend_flow_run
from prefect.states import Completed

from blocks.database import CompanyDatabase
from core.schema import BulkAction


def suspend_paused_action(db: CompanyDatabase, bulk_action_id: int, reason: str) -> State[Any]:
    """Suspend this flow run (it raises Prefect's ``Pause``, which ends the process) or, without a
    deployment, end it with the action paused and the way to resume it."""
    logger = get_run_logger()
    context = FlowRunContext.get()
    flow_run = context.flow_run if context is not None else None
    if flow_run is None or flow_run.deployment_id is None:
        message = (
            f"bulk action {bulk_action_id} paused: {reason}. Resume it with a rerun: bulk_action_id={bulk_action_id} "
            "(and a raised budget_usd if a budget stopped it)"
        )
        logger.warning(message)
        return Completed(message=message)
    pauses = _count_pause(db, bulk_action_id)
    logger.warning(
        "bulk action %d paused: %s. Suspending flow run %s: resume it in the UI or with the "
        "resume-bulk-action deployment (bulk_action_id=%d, optionally a raised budget_usd)",
        bulk_action_id,
        reason,
        flow_run.id,
        bulk_action_id,
    )
    # a key of its own for every pause: a resumed run that pauses again must suspend again, not be waved through
    suspend_flow_run(key=f"bulk-action-{bulk_action_id}-pause-{pauses}")
    return Completed(message=f"bulk action {bulk_action_id} resumed")  # not reached: suspending raises Pause


def _count_pause(db: CompanyDatabase, bulk_action_id: int) -> int:
    with db.session() as session:
        record = session.get(BulkAction, bulk_action_id)
        assert record is not None
        pauses = int((record.parameters or {}).get("pauses", 0)) + 1
        record.parameters = {**(record.parameters or {}), "pauses": pauses}
    return pauses


def flow_run_uuid(flow_run_id: str | None) -> UUID | None:
    try:
        return UUID(flow_run_id) if flow_run_id else None
    except ValueError:
        return None
