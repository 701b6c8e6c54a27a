"""The hooks that keep a bulk action's record in step with its flow run when the engine cannot.

A flow run that is cancelled, crashes or fails outside the engine's own handling (its process killed, an
exception the engine did not expect) leaves its action ``running`` in the database; these hooks, attached to
every action flow (``BULK_ACTION_HOOKS``), record the end Prefect saw, with the outcome counts as they stand.
"""

from __future__ import annotations

from typing import Any

from prefect import Flow
from prefect.client.schemas.objects import FlowRun, State

from blocks.loading import load_database
from core.schema import BulkActionStatus
from core.shards import find_shard_by_flow_run, set_shard_status
from core.store import error_summary, find_bulk_action_by_flow_run, set_status, write_progress


def _finish_from_hook(flow_run: FlowRun, status: BulkActionStatus, reason: str) -> None:
    database = str((flow_run.parameters or {}).get("database") or "default")
    db = load_database(database)
    with db.session() as session:
        record = find_bulk_action_by_flow_run(session, str(flow_run.id))
        if record is not None:
            if not record.status.finished:
                write_progress(session, record.id)
                set_status(session, record.id, status, reason=reason, error_summary=error_summary(session, record.id))
            return
        shard = find_shard_by_flow_run(session, str(flow_run.id))
        if shard is not None and not shard.status.finished:
            set_shard_status(session, shard.bulk_action_id, shard.shard_index, status, reason=reason)


def mark_cancelled(flow: Flow[..., Any], flow_run: FlowRun, state: State[Any]) -> None:
    _finish_from_hook(flow_run, BulkActionStatus.CANCELLED, f"flow run cancelled: {state.message or ''}".strip())


def mark_crashed(flow: Flow[..., Any], flow_run: FlowRun, state: State[Any]) -> None:
    _finish_from_hook(flow_run, BulkActionStatus.FAILED, f"flow run crashed: {state.message or ''}".strip())


def mark_failed(flow: Flow[..., Any], flow_run: FlowRun, state: State[Any]) -> None:
    _finish_from_hook(flow_run, BulkActionStatus.FAILED, f"flow run failed: {state.message or ''}".strip())


BULK_ACTION_HOOKS: dict[str, Any] = {
    "on_cancellation": [mark_cancelled],
    "on_crashed": [mark_crashed],
    "on_failure": [mark_failed],
}
