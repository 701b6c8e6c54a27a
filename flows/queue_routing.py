"""A bulk action's run goes to the work queue of its priority, however it was created.

Our own code creates runs in the right queue (``run_deployment(..., work_queue_name=queue_for(priority))``), but
a run created elsewhere lands in its deployment's queue (``default``): the UI's form when the user did not pick
the queue, or ``prefect deployment run -p priority=9``, which has no work-queue option in Prefect 3.9.1.  So the
engine calls ``route_to_priority_queue`` first: a run that came from a deployment, sits in one of our queues
(``core.slot_priority.WORK_QUEUES``) and not in its priority's, creates the same deployment's run with the same
parameters and tags in the right queue and ends Completed, naming the new run.  Any other run goes on.

The priority is the bulk action's recorded one when the run resumes an action (``bulk_action_id``: reruns,
shards, continuations), else the run's ``priority`` parameter.  In-process subflows (``bulk-action``'s, the
enrichment cron's) have no deployment of their own and run where their parent runs.
"""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger
from prefect.client.schemas.objects import FlowRun, State
from prefect.context import FlowRunContext
from prefect.deployments import run_deployment
from prefect.states import Completed

from blocks.loading import load_database
from core.slot_priority import WORK_QUEUES, queue_for
from core.slot_requests import action_priority
from flows.bulk_types import BulkActionRequest


def request_priority(request: BulkActionRequest) -> int:
    """The priority a request runs at: its bulk action's recorded one when it resumes an action."""
    if request.bulk_action_id is not None:
        with load_database(request.database).read_session() as session:
            recorded = action_priority(session, request.bulk_action_id)
        if recorded is not None:
            return recorded
    return request.priority


def route_to_priority_queue(request: BulkActionRequest) -> State[Any] | None:
    """Move the current run to its priority's work queue (a Completed state naming the new run), or None."""
    context = FlowRunContext.get()
    run = context.flow_run if context is not None else None
    if run is None or run.deployment_id is None or run.work_queue_name not in WORK_QUEUES:
        return None
    priority = request_priority(request)
    wanted = queue_for(priority)
    if run.work_queue_name == wanted:
        return None
    moved: FlowRun = run_deployment(  # type: ignore[assignment]  # sync context: the FlowRun, not a coroutine
        run.deployment_id,
        parameters=dict(run.parameters or {}),
        tags=list(run.tags or []),
        work_queue_name=wanted,
        timeout=0,
        as_subflow=False,
        idempotency_key=f"priority-queue-{run.id}",  # a retried run never moves twice
    )
    message = f"priority {priority} runs in work queue {wanted!r}: moved to flow run {moved.id}"
    get_run_logger().info("queued in %r; %s", run.work_queue_name, message)
    return Completed(message=message)
