"""dead-job-review: the scheduled pass over the dead-job queue.

It shows what is failing (a markdown table of dead jobs grouped by action and error pattern), requeues what may
well work on another try (rate limits, timeouts, 5xx, dropped connections, garbled bodies) as new bulk actions
run as subflows, and hands the rest to a person (the company is flagged ``needs_review`` with the reason).  A
person steers it with ``retry_ids`` (requeue these whatever their error) and ``discard_ids`` (stop retrying
these).  ``dry_run`` shows the plan and changes nothing.

The report ends with the review queue: the companies flagged ``needs_review`` (by this review, by invalid input,
by reclassify, by hand through ``update_status``), counted by the pattern of their reason, so the person who
clears the queue sees what is in it and the returned counts can be watched from run to run.

When the open dead jobs it finds pass the operations policy's ``alerts.dead_jobs_open``, it emits
``bulkai.dead-jobs.backlog`` (``core.events``), which the dead-jobs alert automation turns into a notification.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.client.schemas.objects import State

from blocks.loading import load_database
from blocks.operations import load_operations_policy
from core import events
from core.maintenance import (
    DeadJobGroup,
    ReviewGroup,
    carry_requeue_counts,
    dead_jobs_by_ids,
    discard,
    flag_for_review,
    group_dead_jobs,
    group_review_queue,
    mark_requeued,
    open_permanent_or_exhausted,
    original_provider,
    requeue_candidates,
    set_parent,
)
from core.schema import DeadJob, DeadJobStatus
from core.store import find_bulk_action_by_flow_run
from flows.bulk_action import action_flow
from tasks.events import emit

CREATED_BY = "dead-job-review"
# A person may force a retry of a job that is open or waiting for review; closed jobs stay closed.
_FORCEABLE = (DeadJobStatus.OPEN, DeadJobStatus.NEEDS_REVIEW)
#: reason patterns the report's queue table shows (all are counted in the returned dict)
QUEUE_ROWS = 50


@dataclass
class Requeue:
    """Dead jobs of one action and provider, to run again as one new bulk action."""

    action: str
    provider: str | None
    job_ids: list[int] = field(default_factory=list)
    company_ids: list[int] = field(default_factory=list)
    originals: set[int | None] = field(default_factory=set)
    requeue_counts: dict[int, int] = field(default_factory=dict)
    new_bulk_action_id: int | None = None
    status: str = "planned"

    def add(self, job: DeadJob) -> None:
        self.job_ids.append(job.id)
        if job.company_id not in self.requeue_counts:  # one company once per action, even if it died twice
            self.company_ids.append(job.company_id)
        self.requeue_counts[job.company_id] = max(self.requeue_counts.get(job.company_id, 0), job.requeue_count + 1)
        self.originals.add(job.bulk_action_id)


def _cell(text: object, limit: int = 120) -> str:
    value = " ".join(str(text).split()).replace("|", "\\|")
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _ids(ids: list[int], limit: int = 10) -> str:
    shown = ", ".join(str(i) for i in ids[:limit])
    return shown + (f" … (+{len(ids) - limit})" if len(ids) > limit else "")


def _report(
    groups: list[DeadJobGroup],
    requeues: list[Requeue],
    flagged: list[int],
    discarded: list[int],
    queue: list[ReviewGroup],
    dry_run: bool,
) -> str:
    lines = ["# Dead-job review" + (" (dry run: nothing changed)" if dry_run else ""), ""]
    if groups:
        lines += [
            "| action | error pattern | count | retryable | transient | example | companies |",
            "| --- | --- | ---: | --- | --- | --- | --- |",
        ]
        lines += [
            f"| {g.action} | {_cell(g.pattern)} | {g.count} | {g.retryable} | {g.transient} | "
            f"{_cell(g.example, 80)} | {_ids(g.company_ids)} |"
            for g in groups
        ]
    else:
        lines.append("No open dead jobs.")
    verb = "would requeue" if dry_run else "requeued"
    lines += ["", "## Actions", ""]
    for r in requeues:
        target = f"bulk action {r.new_bulk_action_id} ({r.status})" if r.new_bulk_action_id else r.status
        lines.append(
            f"- {verb} {len(r.job_ids)} `{r.action}` dead job(s) via `{r.provider or 'default provider'}`: {target}"
        )
    lines.append(f"- {'would flag' if dry_run else 'flagged'} for review: {len(flagged)} ({_ids(flagged)})")
    lines.append(f"- {'would discard' if dry_run else 'discarded'}: {len(discarded)} ({_ids(discarded)})")
    return "\n".join(lines + ["", *_queue_section(queue, dry_run)]) + "\n"


def _queue_section(queue: list[ReviewGroup], dry_run: bool) -> list[str]:
    total = sum(g.count for g in queue)
    lines = ["## Review queue", ""]
    if not queue:
        return [*lines, "No company is flagged for review."]
    now = " (as it is now: the companies this review would flag are not in it)" if dry_run else ""
    lines += [
        f"{total} companies flagged `needs_review`{now}, by reason:",
        "",
        "| reason pattern | count | example | companies |",
        "| --- | ---: | --- | --- |",
    ]
    lines += [
        f"| {_cell(g.pattern)} | {g.count} | {_cell(g.example, 80)} | {_ids(g.company_ids, 5)} |"
        for g in queue[:QUEUE_ROWS]
    ]
    rest = queue[QUEUE_ROWS:]
    if rest:
        lines += ["", f"… and {len(rest)} more patterns ({sum(g.count for g in rest)} companies)."]
    return lines


@flow(name="dead-job-review", validate_parameters=True)
def dead_job_review(
    max_requeues: int = 3,
    retry_ids: list[int] | None = None,
    discard_ids: list[int] | None = None,
    database: str = "default",
    dry_run: bool = False,
) -> dict[str, Any]:
    """Requeue transient dead jobs, flag permanent ones for review, apply a person's retries and discards.

    Args:
        max_requeues: a dead job requeued this many times is flagged for review instead.
        retry_ids: dead job ids to requeue whatever their error (open or needs-review ones).
        discard_ids: dead job ids to close as discarded (never retried).
        database: name of the company-database block.
        dry_run: report the plan only.
    """
    logger = get_run_logger()
    db = load_database(database)
    forced_ids = set(retry_ids or [])
    discard_set = set(discard_ids or []) - forced_ids
    plan: dict[tuple[str, str | None], Requeue] = {}
    with db.session() as session:
        groups = group_dead_jobs(session)
        forced = [j for j in dead_jobs_by_ids(session, sorted(forced_ids)) if j.status in _FORCEABLE]
        to_discard = [
            j.id for j in dead_jobs_by_ids(session, sorted(discard_set)) if j.status is not DeadJobStatus.RESOLVED
        ]
        automatic = [
            j
            for jobs in requeue_candidates(session, max_requeues=max_requeues).values()
            for j in jobs
            if j.id not in forced_ids and j.id not in discard_set
        ]
        for job in [*forced, *automatic]:
            provider = original_provider(session, job)
            plan.setdefault((job.action, provider), Requeue(job.action, provider)).add(job)
        planned = {i for r in plan.values() for i in r.job_ids}
        to_flag = [
            j
            for j in open_permanent_or_exhausted(session, max_requeues=max_requeues)
            if j.id not in planned and j.id not in discard_set
        ]
        flagged = [j.id for j in to_flag]
        if not dry_run:
            discard(session, to_discard)
            flag_for_review(session, to_flag)

    _alert_on_backlog(groups)
    requeues = list(plan.values())
    if not dry_run:
        for requeue in requeues:
            _run_requeue(database, requeue)
    with db.read_session() as session:
        queue = group_review_queue(session)  # after the flags and the requeues: the queue a person now finds

    create_markdown_artifact(
        _report(groups, requeues, flagged, to_discard, queue, dry_run),
        key="dead-job-review",
        description=f"{sum(g.count for g in groups)} open dead jobs in {len(groups)} groups",
    )
    logger.info(
        "dead-job review%s: %d groups, %d requeued in %d actions, %d flagged, %d discarded; review queue: %d "
        "companies in %d reason patterns",
        " (dry run)" if dry_run else "",
        len(groups),
        len(planned),
        len(requeues),
        len(flagged),
        len(to_discard),
        sum(g.count for g in queue),
        len(queue),
    )
    return {
        "dry_run": dry_run,
        "groups": len(groups),
        "requeued": sorted(planned),
        "new_bulk_action_ids": [r.new_bulk_action_id for r in requeues if r.new_bulk_action_id is not None],
        "flagged": flagged,
        "discarded": to_discard,
        "review_queue": {g.pattern: g.count for g in queue},
        "review_queue_total": sum(g.count for g in queue),
    }


def _alert_on_backlog(groups: list[DeadJobGroup]) -> None:
    """Emit ``bulkai.dead-jobs.backlog`` when the open dead jobs the review found pass the policy's count.

    Counted before the review acts (dry run or not): the backlog that piled up since the last review is what
    the alert is about, whatever this review then requeues or flags.
    """
    threshold = load_operations_policy().alerts.dead_jobs_open
    by_action: dict[str, int] = {}
    for group in groups:
        by_action[group.action] = by_action.get(group.action, 0) + group.count
    open_jobs = sum(by_action.values())
    if open_jobs > threshold:
        get_run_logger().warning("%d open dead jobs, past the alert threshold of %d", open_jobs, threshold)
        payload = {"open": open_jobs, "threshold": threshold, "by_action": by_action}
        emit(events.DEAD_JOBS_BACKLOG, events.dead_jobs_resource(), payload)


def _run_requeue(database: str, requeue: Requeue) -> None:
    """Run one requeue as a subflow and record its bulk action on the dead jobs it replaces.

    The subflow runs with ``return_state=True``: a requeue whose companies fail again ends its flow run Failed,
    which must not stop the review; its bulk action is found through the child flow run's id either way.
    """
    logger = get_run_logger()
    parameters: dict[str, Any] = {
        "company_ids": requeue.company_ids,
        "database": database,
        "created_by": CREATED_BY,
    }
    if requeue.provider:
        parameters["provider"] = requeue.provider
    returned: Any = action_flow(requeue.action)(**parameters, return_state=True)
    if not isinstance(returned, State):
        raise TypeError(f"expected the subflow's state, got {type(returned).__name__}")
    state: State[Any] = returned
    requeue.status = state.type.value.lower()
    child = state.state_details.flow_run_id
    db = load_database(database)
    with db.session() as session:
        record = find_bulk_action_by_flow_run(session, str(child)) if child else None
        if record is None:
            logger.error(
                "requeue of %s dead jobs %s created no bulk action: %s", requeue.action, requeue.job_ids, state
            )
            return
        requeue.new_bulk_action_id = record.id
        originals = sorted(o for o in requeue.originals if o is not None)
        if len(requeue.originals) == 1 and len(originals) == 1:  # one original: the new action is its child
            set_parent(session, record.id, originals[0])
        mark_requeued(session, dead_jobs_by_ids(session, requeue.job_ids), record.id)
        carry_requeue_counts(session, record.id, requeue.requeue_counts)


if __name__ == "__main__":
    dead_job_review()
