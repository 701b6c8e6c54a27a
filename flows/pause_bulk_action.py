"""pause_bulk_action: ask a running bulk action to pause; it suspends once its batches in flight finish.

From the UI (this deployment's form) or the CLI::

    prefect deployment run pause-bulk-action/pause-bulk-action -p bulk_action_id=7

The engine sees the request within ``cancel_check_seconds``, starts no new batch, lets the ones in flight
commit, records the action ``paused`` and suspends its flow run (``flows.pausing``), which frees the worker.
"""

from __future__ import annotations

from prefect import flow, get_run_logger

from blocks.loading import load_database
from core.errors import InputError
from core.schema import BulkAction, BulkActionStatus
from core.store import set_pause_request


@flow(name="pause-bulk-action", validate_parameters=True)
def pause_bulk_action(bulk_action_id: int, database: str = "default") -> str:
    """Pause bulk action ``bulk_action_id``: no new batches start, in-flight ones finish, the run is suspended.

    Args:
        bulk_action_id: the bulk action to pause (pending or running).
        database: name of the company-database block.
    """
    with load_database(database).session() as session:
        record = session.get(BulkAction, bulk_action_id)
        if record is None:
            raise InputError(f"bulk action {bulk_action_id} does not exist")
        if record.status is BulkActionStatus.PAUSED:
            return f"bulk action {bulk_action_id} is already paused: {record.status_reason}"
        if record.status.finished:
            raise InputError(f"bulk action {bulk_action_id} has ended ({record.status.value}): nothing to pause")
        set_pause_request(session, bulk_action_id, True)
    message = f"bulk action {bulk_action_id} will pause once its batches in flight finish"
    get_run_logger().info(message)
    return message


if __name__ == "__main__":
    pause_bulk_action(0)
