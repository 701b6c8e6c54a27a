"""resume_bulk_action: resume a paused bulk action, optionally with a raised budget.

From the UI (this deployment's form, or the suspended flow run's own Resume button when no budget needs
raising) or the CLI::

    prefect deployment run resume-bulk-action/resume-bulk-action -p bulk_action_id=7 -p budget_usd=25

A suspended flow run is resumed in place (the same flow run continues from its checkpoints); an action paused
in a flow run that had no deployment is resumed by a new run of its action's deployment with
``bulk_action_id``.  Either way, no batch that had completed is paid for again.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from prefect import flow, get_run_logger
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import StateType
from prefect.deployments import run_deployment
from prefect.flow_runs import resume_flow_run

from blocks.loading import load_database
from core.errors import InputError
from core.pricing import format_usd, usd_to_nano
from core.schema import BulkAction, BulkActionStatus
from core.slot_priority import queue_for
from core.spend import action_account, check_budget_usd, set_limits
from core.store import set_pause_request
from flows.bulk_record import read_flow_run


@flow(name="resume-bulk-action", validate_parameters=True)
def resume_bulk_action(bulk_action_id: int, budget_usd: float | None = None, database: str = "default") -> str:
    """Resume paused bulk action ``bulk_action_id`` from its checkpoints.

    Args:
        bulk_action_id: the paused bulk action.
        budget_usd: a new spend cap for the whole action, USD (raise it when a budget stopped the action);
            empty keeps the current one.
        database: name of the company-database block.
    """
    check_budget_usd(budget_usd)
    logger = get_run_logger()
    with load_database(database).session() as session:
        record = session.get(BulkAction, bulk_action_id)
        if record is None:
            raise InputError(f"bulk action {bulk_action_id} does not exist")
        if record.status is not BulkActionStatus.PAUSED:
            if record.pause_requested and not record.status.finished:
                set_pause_request(session, bulk_action_id, False)
                return f"bulk action {bulk_action_id} had not paused yet: its pause request is withdrawn"
            raise InputError(f"bulk action {bulk_action_id} is {record.status.value}, not paused")
        if budget_usd is not None:
            set_limits(session, {action_account(bulk_action_id): usd_to_nano(budget_usd)})
            logger.info("bulk action %d: budget set to %s", bulk_action_id, format_usd(usd_to_nano(budget_usd)))
        action, flow_run_id, priority = record.action, record.flow_run_id, record.priority
    with get_client(sync_client=True) as client:
        owner = read_flow_run(client, flow_run_id) if flow_run_id else None
    if owner is not None and owner.state is not None and owner.state.type is StateType.PAUSED:
        resume_flow_run(owner.id)
        message = f"bulk action {bulk_action_id}: resumed its suspended flow run {owner.id}"
    else:
        name = action.replace("_", "-")
        started: Any = run_deployment(
            f"{name}/{name}",
            parameters={"bulk_action_id": bulk_action_id, "database": database},
            timeout=0,
            work_queue_name=queue_for(priority),
        )
        message = f"bulk action {bulk_action_id}: started flow run {UUID(str(started.id))} to resume it"
    logger.info(message)
    return message


if __name__ == "__main__":
    resume_bulk_action(0)
