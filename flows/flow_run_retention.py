"""Keep Prefect's history bounded: delete old flow runs through the API, never one of an unfinished bulk action.

Why not Prefect's own vacuum: Prefect 3.9.1's database vacuum service can delete flow runs
(``PREFECT_SERVER_SERVICES_DB_VACUUM_ENABLED`` containing ``flow_runs``, with
``PREFECT_SERVER_SERVICES_DB_VACUUM_RETENTION_PERIOD``), but it deletes *every* top-level flow run in a terminal
state whose ``end_time`` is past the retention (``prefect.server.services.db_vacuum.vacuum_old_flow_runs``), with
no way to exclude any.  It would delete flow runs of bulk actions that are not finished: the completed round runs
of an LLM reclassify still ``waiting`` on its message batches, the crashed run of an action a person will resume
next week, the runs of a paused action.  Their records point at those runs (``core.retention``), and resuming or
taking over an action reads them.  So the flow-run vacuum stays off, and the ``cleanup`` flow deletes old flow runs
itself, skipping every flow run recorded on an unfinished action of any company database it was given.

What Prefect's server still does (``deployments.server_settings``): the event vacuum (on by default, events
older than ``PREFECT_EVENTS_RETENTION_PERIOD``, 7 days) and the orphan vacuum, which removes the artifacts of the
flow runs deleted here (deleting a flow run through the API takes its task runs and states with it, and its logs
in a background task, but leaves its artifacts).

Like the vacuum, only top-level runs are deleted; a subflow's parent going makes it top-level, and a later pass
takes it (or keeps it, if it belongs to an unfinished action).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from uuid import UUID

from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterEndTime,
    FlowRunFilterParentTaskRunId,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import StateType
from prefect.exceptions import ObjectNotFound

from blocks.loading import load_database
from core.retention import flow_runs_of_unfinished_actions

TERMINAL = [StateType.COMPLETED, StateType.FAILED, StateType.CANCELLED, StateType.CRASHED]
_PAGE = 200


@dataclass
class FlowRunRetention:
    """What one pass did (or, in a dry run, would do)."""

    cutoff: datetime
    databases: list[str] = field(default_factory=list)
    old: int = 0
    kept: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    skipped_reason: str | None = None


def company_database_names(client: SyncPrefectClient) -> list[str]:
    """Every company-database block saved on the server: the default set whose unfinished actions are protected."""
    documents = client.read_block_documents_by_type("company-database", limit=1000)
    return sorted(d.name for d in documents if d.name)


def protected_flow_runs(databases: list[str]) -> set[str]:
    """The flow runs of unfinished bulk actions in every one of ``databases`` (raises if one cannot be read)."""
    kept: set[str] = set()
    for name in databases:
        with load_database(name).read_session() as session:
            kept |= flow_runs_of_unfinished_actions(session)
    return kept


def old_flow_runs(client: SyncPrefectClient, ended_before: datetime) -> list[str]:
    """Ids of top-level flow runs in a terminal state that ended before ``ended_before``."""
    flow_run_filter = FlowRunFilter(
        parent_task_run_id=FlowRunFilterParentTaskRunId(is_null_=True),
        state=FlowRunFilterState(type=FlowRunFilterStateType(any_=TERMINAL)),
        end_time=FlowRunFilterEndTime.model_validate({"before_": ended_before}),  # pydantic coerces to its DateTime
    )
    found: list[str] = []
    while True:
        page = client.read_flow_runs(flow_run_filter=flow_run_filter, limit=_PAGE, offset=len(found))
        found += [str(run.id) for run in page]
        if len(page) < _PAGE:
            return found


def delete_old_flow_runs(
    client: SyncPrefectClient, *, now: datetime, retention_days: float, databases: list[str], dry_run: bool
) -> FlowRunRetention:
    """Delete top-level terminal flow runs that ended more than ``retention_days`` before ``now``, except those of
    unfinished bulk actions in ``databases``.  If any of those databases cannot be read, nothing is deleted."""
    result = FlowRunRetention(cutoff=now - timedelta(days=retention_days), databases=databases)
    old = old_flow_runs(client, result.cutoff)
    result.old = len(old)
    if not old:
        return result
    try:
        protected = protected_flow_runs(databases)
    except Exception as exc:  # noqa: BLE001 - any failure to read means we cannot prove a run is safe to delete
        result.kept = old
        result.skipped_reason = f"kept all: a company database could not be read ({type(exc).__name__})"
        return result
    result.kept = [run for run in old if run.lower() in protected]
    doomed = [run for run in old if run.lower() not in protected]
    if dry_run:
        result.deleted = doomed
        return result
    for run in doomed:
        try:
            client.delete_flow_run(UUID(run))
        except ObjectNotFound:
            pass  # deleted meanwhile (another cleanup, a person in the UI): gone either way
        result.deleted.append(run)
    return result
