"""The bulk action record a flow run drives: created once from a selection, reopened by reruns and shards.

A new action resolves its selection inside the database straight into its outcome rows (``core.selection``)
and stores how it cuts them into batches, so a rerun rebuilds exactly the same batches and hits their
checkpoints even if the provider block was edited since.  A rerun (``bulk_action_id``) or a shard reopens
the record; two flow runs never drive one action (or one shard) at once: a previous owner that still shows as
running is refused, or crashed and its provider slots freed when the caller says ``takeover``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any
from uuid import UUID

from prefect import get_run_logger
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterId,
    TaskRunFilter,
    TaskRunFilterState,
    TaskRunFilterStateType,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.exceptions import ObjectNotFound
from prefect.states import Crashed

from blocks.database import CompanyDatabase
from core.batching import BatchPlan, balanced_calls_per_batch
from core.catalog import ActionSpec
from core.errors import InputError
from core.pricing import usd_to_nano
from core.schema import BulkAction, BulkActionStatus
from core.selection import describe, resolve_into_outcomes
from core.shards import ensure_shards, get_shard, set_shard_status
from core.spend import action_account, set_limits
from core.store import create_bulk_action, find_bulk_action_by_flow_run, set_status
from flows.provider_slots import release_slots_of_dead_run

if TYPE_CHECKING:
    from flows.engine import BulkActionRequest


@dataclass(frozen=True)
class OpenedAction:
    bulk_action_id: int
    plan: BatchPlan
    created: bool


def as_started(db: CompanyDatabase, request: BulkActionRequest, spec: ActionSpec) -> BulkActionRequest:
    """A rerun of a bulk action runs on the provider and options it started with.

    Checkpoints are keyed on them, so resuming on anything else would silently redo (and pay for) every batch
    that had completed.  A rerun that leaves ``provider`` at the action's default gets the stored one, and one
    that names another provider is refused with the way out; options (whose defaults the flows always pass)
    are the stored ones, with a warning when the rerun asked for others.
    """
    if request.bulk_action_id is None:
        return request
    with db.read_session() as session:
        record = session.get(BulkAction, request.bulk_action_id)
        stored = dict(record.parameters or {}) if record is not None else {}
    if record is None or "provider" not in stored:
        return request  # open_action reports a missing record
    provider, options = str(stored["provider"]), dict(stored.get("options") or {})
    allow_unpriced = request.allow_unpriced or bool(stored.get("allow_unpriced", False))
    if request.provider not in (provider, spec.default_provider):
        raise InputError(
            f"bulk action {request.bulk_action_id} runs on provider {provider!r}, not {request.provider!r}: "
            "omit provider to resume it, or start a new bulk action on the other provider"
        )
    if request.options != options:
        get_run_logger().warning(
            "bulk action %d resumes with the options it started with, %s (not %s)",
            request.bulk_action_id,
            options,
            request.options,
        )
    return replace(request, provider=provider, options=options, allow_unpriced=allow_unpriced)


def plan_of(record: BulkAction, spec: ActionSpec) -> BatchPlan:
    """The batches an action was cut into when it started (actions recorded before batching: one call each)."""
    stored = record.parameters or {}
    return BatchPlan(
        total=record.total,
        call_size=int(stored.get("call_size", spec.call_size)),
        calls_per_batch=int(stored.get("calls_per_batch", 1)),
    )


def open_action(
    db: CompanyDatabase,
    request: BulkActionRequest,
    spec: ActionSpec,
    flow_run_id: str,
    tag: str,
    calls_per_batch: int,
    slots: int,
) -> OpenedAction:
    """Find or create the bulk action record driven by this flow run (not a shard: see ``open_shard``).

    ``calls_per_batch`` is the provider block's; a new action small for the provider's ``slots`` is cut finer
    (``balanced_calls_per_batch``), and the size chosen is stored so a rerun rebuilds the same batches.
    """
    with db.session() as session:
        record = find_bulk_action_by_flow_run(session, flow_run_id)
        resumed_self = record is not None  # this flow run's own action: a suspended run resumed, or retried
        if record is None and request.bulk_action_id is not None:
            record = _record(session, request)
            if record.flow_run_id and record.flow_run_id != flow_run_id:
                take_over_from(record.flow_run_id, f"bulk action {record.id}", flow_run_id, request.takeover, tag)
            history = list((record.parameters or {}).get("flow_runs", []))
            record.parameters = {**(record.parameters or {}), "flow_runs": [*history, flow_run_id]}
            record.flow_run_id = flow_run_id
        if record is not None:
            if request.selection is not None and not resumed_self:
                raise InputError(f"bulk action {record.id} has its selection already; omit it to resume the action")
            _check_shards(record, request.shards)
            if request.budget_usd is not None:
                set_limits(session, {action_account(record.id): usd_to_nano(request.budget_usd)})
            return OpenedAction(record.id, plan_of(record, spec), created=False)
        if request.selection is None:
            raise InputError("say which companies: give a selection (ids, a filter or another action's companies)")
        record = create_bulk_action(
            session,
            action=request.action,
            company_ids=[],
            created_by=request.created_by,
            priority=request.priority,
            flow_run_id=flow_run_id,
            parent_id=request.parent_id,
            parameters={
                "provider": request.provider,
                "database": request.database,
                "options": request.options,
                "selection": describe(request.selection),
                "call_size": spec.call_size,
                "calls_per_batch": calls_per_batch,
                "shards": request.shards,
                "flow_runs": [flow_run_id],
                "budget_usd": request.budget_usd,
                "allow_unpriced": request.allow_unpriced,
                **({"retry_of": request.retry_of} if request.retry_of is not None else {}),
            },
        )
        # an empty selection raises here, and the transaction leaves no record behind
        record.total = resolve_into_outcomes(session, record.id, request.selection, max_companies=request.max_companies)
        budget = None if request.budget_usd is None else usd_to_nano(request.budget_usd)
        set_limits(session, {action_account(record.id): budget})  # the account exists, capped or not
        balanced = balanced_calls_per_batch(record.total, spec.call_size, calls_per_batch, slots)
        record.parameters = {**(record.parameters or {}), "calls_per_batch": balanced}
        if request.shards > 1:
            ensure_shards(session, record.id, request.shards)
        return OpenedAction(record.id, plan_of(record, spec), created=True)


def open_shard(
    db: CompanyDatabase, request: BulkActionRequest, spec: ActionSpec, flow_run_id: str, tag: str
) -> OpenedAction:
    """Claim one shard of an existing bulk action for this flow run.

    A previous owner still shown as running is refused, or, with ``takeover``, crashed only once this run's
    claim has committed: the parent marks failed a shard whose flow run ended without recording its end, so
    it must never see the crashed owner while the shard's row still names it.
    """
    assert request.shard_index is not None
    if request.bulk_action_id is None:
        raise InputError("shard_index needs the bulk_action_id of the action it belongs to")
    previous: str | None = None
    what = f"shard {request.shard_index} of bulk action {request.bulk_action_id}"
    with db.session() as session:
        record = _record(session, request)
        _check_shards(record, request.shards)
        ensure_shards(session, record.id, request.shards)
        shard = get_shard(session, record.id, request.shard_index)
        if shard is None:
            raise InputError(f"bulk action {record.id} has no shard {request.shard_index} of {request.shards}")
        if shard.flow_run_id and shard.flow_run_id != flow_run_id:
            previous = shard.flow_run_id
            if not request.takeover:
                take_over_from(previous, what, flow_run_id, False, tag)  # refuses an owner still running
        set_shard_status(session, record.id, shard.shard_index, shard.status, flow_run_id=flow_run_id)
        if record.status.finished and record.status is not BulkActionStatus.COMPLETED:
            # a shard rerun after the action ended failed or cancelled reopens it; the last shard ends it again
            set_status(session, record.id, BulkActionStatus.RUNNING)
        opened = OpenedAction(record.id, plan_of(record, spec), created=False)
    if previous is not None and request.takeover:
        take_over_from(previous, what, flow_run_id, True, tag)
    return opened


def _record(session: Any, request: BulkActionRequest) -> BulkAction:
    record: BulkAction | None = session.get(BulkAction, request.bulk_action_id)
    if record is None:
        raise InputError(f"bulk action {request.bulk_action_id} does not exist")
    if record.action != request.action:
        raise InputError(f"bulk action {record.id} is a {record.action!r} action, not {request.action!r}")
    return record


def _check_shards(record: BulkAction, shards: int) -> None:
    stored = int((record.parameters or {}).get("shards", 1))
    if shards not in (1, stored):
        raise InputError(f"bulk action {record.id} runs in {stored} shards, not {shards}")


def take_over_from(owner_id: str, what: str, flow_run_id: str, takeover: bool, tag: str | None) -> None:
    """Two flow runs must never drive one action (or shard) at once.

    If the previous flow run still shows as running, its process may be alive (refuse) or dead without the
    server knowing yet (a killed worker): ``takeover=True`` says the caller knows it is dead.  The old run and
    its unfinished task runs are then marked Crashed and the provider slots they held are given back, so the
    UI tells the truth and the rerun is not throttled by leases nobody will ever release.
    """
    with get_client(sync_client=True) as client:
        owner = read_flow_run(client, owner_id)
        if owner is None or owner.state is None or owner.state.is_final():
            return
        if not takeover:
            raise InputError(
                f"{what} is still owned by flow run {owner.id} ({owner.state.type.value}); "
                "cancel that run, or pass takeover=true if its process is gone"
            )
        crash_flow_run(client, owner.id, f"taken over by flow run {flow_run_id} ({what})", tag)
        get_run_logger().warning("took %s over from flow run %s and freed its %r slots", what, owner.id, tag)


def read_flow_run(client: SyncPrefectClient, flow_run_id: str) -> FlowRun | None:
    try:
        return client.read_flow_run(UUID(flow_run_id))
    except (ObjectNotFound, ValueError):
        return None


def crash_flow_run(client: SyncPrefectClient, flow_run_id: UUID, message: str, tag: str | None) -> None:
    """Mark a flow run whose process is gone Crashed, with its unfinished task runs, and free its slots."""
    client.set_flow_run_state(flow_run_id, Crashed(message=message), force=True)
    unfinished = client.read_task_runs(
        flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),
        task_run_filter=TaskRunFilter(
            state=TaskRunFilterState(
                type=TaskRunFilterStateType(any_=[StateType.RUNNING, StateType.PENDING, StateType.SCHEDULED])
            )
        ),
    )
    for task_run in unfinished:
        client.set_task_run_state(task_run.id, Crashed(message=message), force=True)
    if tag is not None:
        release_slots_of_dead_run(client, tag, flow_run_id)
