"""Queries and writes behind the scheduled maintenance flows (enrichment cron, dead-job review, cleanup).

Prefect-free on purpose: the flows in ``flows/`` decide *when* and *whether*; these functions decide *what*, so
they can be tested (and reasoned about) against a plain database.  Like ``core.store`` they take a ``Session``
and never commit: the caller owns the transaction.  Every function that compares against the clock takes
``now``, so tests and dry runs see exactly the instant they were given.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.orm import Session

from core.errors import (
    MalformedResponseError,
    ProviderConnectionError,
    ProviderServerError,
    ProviderTimeoutError,
    RateLimitedError,
    RetryableProviderError,
)
from core.schema import (
    BulkAction,
    BulkActionStatus,
    Company,
    CompanyStatus,
    DeadJob,
    DeadJobStatus,
    EnrichmentStatus,
    utcnow,
)
from core.selection import CompanyFilter, Selection, selected_companies
from core.store import chunked

# --- enrichment due --------------------------------------------------------------------------------------------


def companies_due_for_enrichment(session: Session, *, max_age_days: int, limit: int, now: datetime) -> list[int]:
    """Ids of the companies the enrichment cron should research next, most important first.

    Due means active (deleted and merged companies are not worth paying for) and either never enriched, enriched
    longer than ``max_age_days`` ago (profiles go stale), or failed with a retryable error.  A permanent failure
    is skipped: retrying gives the same answer and costs money, so those wait for the dead-job review.  Order is
    priority (high first), then the oldest enrichment (never enriched before anything else), then id, so equal
    inputs always give the same selection.
    """
    if limit <= 0:
        return []
    cutoff = now - timedelta(days=max_age_days)
    never = or_(Company.enrichment_status == EnrichmentStatus.NEVER, Company.enriched_at.is_(None))
    stmt = (
        select(Company.id)
        .where(
            Company.status == CompanyStatus.ACTIVE,
            Company.enrichment_status != EnrichmentStatus.FAILED_PERMANENT,
            or_(
                never,
                Company.enrichment_status == EnrichmentStatus.FAILED_RETRYABLE,
                and_(Company.enrichment_status == EnrichmentStatus.ENRICHED, Company.enriched_at < cutoff),
            ),
        )
        .order_by(
            Company.priority.desc(),
            Company.enriched_at.is_not(None),  # False (never enriched) sorts first
            Company.enriched_at.asc(),
            Company.id.asc(),
        )
        .limit(limit)
    )
    return list(session.scalars(stmt))


def max_priority(session: Session, company_ids: Sequence[int]) -> int:
    """The highest priority among ``company_ids`` (0 for none): the cron's bulk action inherits it."""
    best = 0
    for part in chunked(list(company_ids)):
        for value in session.scalars(select(Company.priority).where(Company.id.in_(part))):
            best = max(best, int(value))
    return best


# --- dead jobs -------------------------------------------------------------------------------------------------

_TRANSIENT_CLASSES = frozenset(
    cls.__name__
    for cls in (
        RetryableProviderError,
        RateLimitedError,
        ProviderServerError,
        ProviderTimeoutError,
        ProviderConnectionError,
        MalformedResponseError,
    )
)
# Classes raised outside our provider layer (httpx, the standard library) that mean the same thing.
_TRANSIENT_FOREIGN = frozenset({"TimeoutError", "ConnectionError", "ReadTimeout", "ConnectTimeout", "ConnectError"})
_TRANSIENT_MESSAGE = re.compile(
    r"\b(429|rate.?limit|too many requests|time[d ]?out|5\d\d|server error|connection (reset|refused|error)|"
    r"malformed)\b",
    re.IGNORECASE,
)

_URL = re.compile(r"https?://\S+")
_UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.IGNORECASE)
_HEXID = re.compile(r"\b(?=[0-9a-f]*\d)[0-9a-f]{12,}\b", re.IGNORECASE)
#: provider ids such as run_abc123def: a digit or capital after the prefix, so snake_case words
#: (``generate_embeddings``, which starts every reason the review flags) stay as they are
_TOKEN_ID = re.compile(r"\b[a-z]+_(?=[a-z]*[A-Z0-9])[A-Za-z0-9]{6,}\b")
#: a value quoted in a message (``website 'ftp://x.example' is not ...``); an apostrophe inside a word is not a quote
_QUOTED = re.compile(r"""(?<![\w'"])(['"])[^'"\n]{1,300}\1(?!\w)""")
_NUMBER = re.compile(r"\d+(\.\d+)?")
PATTERN_LENGTH = 120


def error_pattern(error_class: str, message: str) -> str:
    """``error_class: message`` with what differs between occurrences of one error collapsed (:func:`pattern_of`)."""
    return f"{error_class}: {pattern_of(message)}"


def pattern_of(message: str) -> str:
    """``message`` with what differs between occurrences of one error or review reason collapsed.

    URLs, UUIDs, long hex ids, provider ids, quoted values and numbers become placeholders, whitespace is squeezed
    and the result is truncated, so 500 timeouts of 500 companies (or 500 unusable websites flagged for review)
    read as one line in the review.
    """
    text = _URL.sub("<url>", message)
    text = _UUID.sub("<id>", text)
    text = _HEXID.sub("<id>", text)
    text = _TOKEN_ID.sub("<id>", text)
    text = _QUOTED.sub(r"\1<value>\1", text)
    text = _NUMBER.sub("<n>", text)
    text = " ".join(text.split())
    if len(text) > PATTERN_LENGTH:
        text = text[: PATTERN_LENGTH - 1] + "…"
    return text


@dataclass
class DeadJobGroup:
    """Dead jobs of one action failing the same way: one row of the review table."""

    action: str
    pattern: str
    error_class: str
    count: int = 0
    retryable: bool = False
    transient: bool = False
    example: str = ""
    company_ids: list[int] = field(default_factory=list)
    dead_job_ids: list[int] = field(default_factory=list)


def group_dead_jobs(session: Session, *, status: DeadJobStatus = DeadJobStatus.OPEN) -> list[DeadJobGroup]:
    """Dead jobs in ``status`` grouped by action and error pattern, largest group first.

    ``retryable``/``transient`` are true when any job of the group is, so a group is never under-reported.
    """
    groups: dict[tuple[str, str], DeadJobGroup] = {}
    jobs = session.scalars(select(DeadJob).where(DeadJob.status == status).order_by(DeadJob.id))
    for job in jobs:
        pattern = error_pattern(job.error_class, job.error_message)
        group = groups.get((job.action, pattern))
        if group is None:
            group = groups[(job.action, pattern)] = DeadJobGroup(
                action=job.action, pattern=pattern, error_class=job.error_class, example=job.error_message[:300]
            )
        group.count += 1
        group.retryable = group.retryable or job.retryable
        group.transient = group.transient or transient(job)
        group.company_ids.append(job.company_id)
        group.dead_job_ids.append(job.id)
    return sorted(groups.values(), key=lambda g: (-g.count, g.action, g.pattern))


def transient(dead_job: DeadJob) -> bool:
    """Whether another try later may well succeed: rate limits, timeouts, 5xx, dropped connections, garbled bodies.

    The ``retryable`` flag set when the job died is trusted first; the error class (our tree in ``core.errors``
    or a well-known foreign one) and, last, a 429/5xx/timeout in the message cover rows written by older code.
    Anything else (4xx, output that does not parse, our own bugs) is permanent: requeueing it only pays twice.
    """
    if dead_job.retryable:
        return True
    if dead_job.error_class in _TRANSIENT_CLASSES or dead_job.error_class in _TRANSIENT_FOREIGN:
        return True
    return bool(_TRANSIENT_MESSAGE.search(dead_job.error_message or ""))


def requeue_candidates(session: Session, *, max_requeues: int) -> dict[str, list[DeadJob]]:
    """Open transient dead jobs that have been requeued fewer than ``max_requeues`` times, by action.

    The cap stops a company that fails every night from being paid for forever; past it the review flags it.
    """
    found: dict[str, list[DeadJob]] = {}
    stmt = select(DeadJob).where(DeadJob.status == DeadJobStatus.OPEN).order_by(DeadJob.id)
    for job in session.scalars(stmt):
        if transient(job) and job.requeue_count < max_requeues:
            found.setdefault(job.action, []).append(job)
    return found


def open_permanent_or_exhausted(session: Session, *, max_requeues: int) -> list[DeadJob]:
    """Open dead jobs no automatic requeue will fix: permanent errors, or transient ones past the cap."""
    stmt = select(DeadJob).where(DeadJob.status == DeadJobStatus.OPEN).order_by(DeadJob.id)
    return [j for j in session.scalars(stmt) if not transient(j) or j.requeue_count >= max_requeues]


def dead_jobs_by_ids(session: Session, ids: Sequence[int]) -> list[DeadJob]:
    """The dead jobs named by a person (``retry_ids`` / ``discard_ids``), in id order; unknown ids are skipped."""
    found: list[DeadJob] = []
    for part in chunked(list(ids)):
        found.extend(session.scalars(select(DeadJob).where(DeadJob.id.in_(part))))
    return sorted(found, key=lambda j: j.id)


def original_provider(session: Session, job: DeadJob) -> str | None:
    """The provider the job's bulk action ran with, so a requeue asks the same provider (None if unknown)."""
    if job.bulk_action_id is None:
        return None
    record = session.get(BulkAction, job.bulk_action_id)
    provider = (record.parameters or {}).get("provider") if record is not None else None
    return str(provider) if provider else None


def mark_requeued(
    session: Session, jobs: Sequence[DeadJob], new_bulk_action_id: int, *, now: datetime | None = None
) -> None:
    """The jobs were handed to bulk action ``new_bulk_action_id``: count the requeue and close them here.

    If the company fails again, the new action writes a fresh dead job under its own id, carrying on the story.
    The requeue count travels with the company: the new dead job cannot know it, so the review adds it back (see
    ``carry_requeue_counts``).
    """
    for job in jobs:
        job.status = DeadJobStatus.REQUEUED
        job.requeue_count += 1
        job.resolved_at = now or utcnow()
        job.requeued_as_bulk_action_id = new_bulk_action_id


def carry_requeue_counts(session: Session, bulk_action_id: int, previous: dict[int, int]) -> None:
    """Give the dead jobs a requeue produced the requeue counts of the jobs they replace (company -> count).

    Without this the cap in ``requeue_candidates`` would reset with every requeue and never be reached.
    """
    for job in session.scalars(select(DeadJob).where(DeadJob.bulk_action_id == bulk_action_id)):
        job.requeue_count = max(job.requeue_count, previous.get(job.company_id, 0))


def set_parent(session: Session, bulk_action_id: int, parent_id: int) -> None:
    """Link a requeue's bulk action to the one it retries (the action flows do not take ``parent_id``)."""
    session.execute(update(BulkAction).where(BulkAction.id == bulk_action_id).values(parent_id=parent_id))


def flag_for_review(session: Session, jobs: Sequence[DeadJob]) -> None:
    """Hand the jobs to a person: the company shows ``needs_review`` with why, the job leaves the open queue."""
    for job in jobs:
        company = session.get(Company, job.company_id)
        if company is not None:
            company.needs_review = True
            company.review_reason = f"{job.action}: {job.error_class}: {job.error_message}"[:2000]
        job.status = DeadJobStatus.NEEDS_REVIEW


def discard(session: Session, ids: Sequence[int], *, now: datetime | None = None) -> list[int]:
    """Mark the dead jobs ``ids`` discarded (a person decided they are not worth retrying); returns those found."""
    jobs = dead_jobs_by_ids(session, ids)
    for job in jobs:
        job.status = DeadJobStatus.DISCARDED
        job.resolved_at = now or utcnow()
    return [j.id for j in jobs]


# --- the review queue ------------------------------------------------------------------------------------------

#: what a flagged company without a reason is counted under
NO_REASON = "(no reason given)"
#: example company ids kept per reason pattern
REVIEW_EXAMPLES = 10
#: the review queue as the README selects it to export and to clear: flagged and active
REVIEW_QUEUE = Selection(filter=CompanyFilter(needs_review=True))


@dataclass
class ReviewGroup:
    """Companies waiting for a person for the same kind of reason: one row of the review's queue table."""

    pattern: str
    count: int = 0
    example: str = ""
    #: the first :data:`REVIEW_EXAMPLES` by id
    company_ids: list[int] = field(default_factory=list)


def group_review_queue(session: Session) -> list[ReviewGroup]:
    """The companies flagged ``needs_review`` grouped by the pattern of their reason, largest group first.

    The queue is the selection ``{"filter": {"needs_review": true}}`` (:data:`REVIEW_QUEUE`), so the counts are
    those an export or an ``update_status`` clear of the queue acts on; reasons collapse with the dead jobs'
    normaliser (:func:`pattern_of`), so a thousand unusable websites are one row.  Streams id and reason only.
    """
    queue = selected_companies(session, REVIEW_QUEUE).subquery()
    rows = session.execute(
        select(Company.id, Company.review_reason)
        .join(queue, queue.c.id == Company.id)
        .order_by(Company.id)
        .execution_options(yield_per=5000)
    )
    patterns: dict[str, str] = {}  # reason → pattern: reasons repeat, the regexes need not
    groups: dict[str, ReviewGroup] = {}
    for company_id, reason in rows:
        text = (reason or "").strip()
        pattern = patterns.get(text)
        if pattern is None:
            pattern = patterns[text] = pattern_of(text) if text else NO_REASON
        group = groups.get(pattern)
        if group is None:
            group = groups[pattern] = ReviewGroup(pattern=pattern, example=text[:300])
        group.count += 1
        if len(group.company_ids) < REVIEW_EXAMPLES:
            group.company_ids.append(company_id)
    return sorted(groups.values(), key=lambda g: (-g.count, g.pattern))


# --- cleanup ---------------------------------------------------------------------------------------------------

_FINISHED = (BulkActionStatus.COMPLETED, BulkActionStatus.FAILED, BulkActionStatus.CANCELLED)
#: every status an action may still move on from (waiting: an LLM reclassify between rounds)
UNFINISHED = tuple(s for s in BulkActionStatus if not s.finished)


def finished_bulk_actions_older_than(session: Session, days: int, now: datetime) -> list[int]:
    """Ids of completed/failed/cancelled actions that finished more than ``days`` ago.

    Unfinished actions (pending, running, paused, waiting) are never returned, whatever their age.
    """
    cutoff = now - timedelta(days=days)
    stmt = (
        select(BulkAction.id)
        .where(BulkAction.status.in_(_FINISHED), BulkAction.finished_at.is_not(None), BulkAction.finished_at < cutoff)
        .order_by(BulkAction.id)
    )
    return list(session.scalars(stmt))


def delete_bulk_actions(session: Session, ids: Sequence[int]) -> int:
    """Delete the actions; returns how many.

    The database does the rest (foreign keys in migration 0001/0002): outcomes cascade, while dead jobs, scores
    and child actions keep their rows with ``bulk_action_id``/``parent_id`` set to NULL, so no history of what
    failed is lost with the action.
    """
    deleted = 0
    for part in chunked(list(ids)):
        # SQL DELETE, not session.delete: the ON DELETE rules must run in the database, not in the ORM.
        result = session.execute(
            delete(BulkAction).where(BulkAction.id.in_(part)).execution_options(synchronize_session=False)
        )
        deleted += int(getattr(result, "rowcount", 0) or 0)
    return deleted


def stuck_running_actions(session: Session) -> list[BulkAction]:
    """Actions the database says are running: the cleanup asks Prefect whether their flow run still is."""
    return list(
        session.scalars(select(BulkAction).where(BulkAction.status == BulkActionStatus.RUNNING).order_by(BulkAction.id))
    )


def unfinished_count(session: Session) -> int:
    """How many actions are pending, running, paused or waiting: any of them may resume from checkpoints."""
    return len(list(session.scalars(select(BulkAction.id).where(BulkAction.status.in_(UNFINISHED)))))


def mark_failed(session: Session, bulk_action_id: int, reason: str, *, now: datetime) -> None:
    """End an action whose flow run is gone as ``failed``, saying why; it can still be rerun by id."""
    session.execute(
        update(BulkAction)
        .where(BulkAction.id == bulk_action_id)
        .values(status=BulkActionStatus.FAILED, status_reason=reason, finished_at=now, updated_at=now)
    )


def resolved_dead_jobs_older_than(session: Session, days: int, now: datetime) -> list[int]:
    """Ids of resolved/discarded dead jobs closed more than ``days`` ago (by ``resolved_at``, else ``created_at``)."""
    cutoff = now - timedelta(days=days)
    closed_at = or_(
        and_(DeadJob.resolved_at.is_not(None), DeadJob.resolved_at < cutoff),
        and_(DeadJob.resolved_at.is_(None), DeadJob.created_at < cutoff),
    )
    stmt = (
        select(DeadJob.id)
        .where(DeadJob.status.in_((DeadJobStatus.RESOLVED, DeadJobStatus.DISCARDED)), closed_at)
        .order_by(DeadJob.id)
    )
    return list(session.scalars(stmt))


def prune_resolved_dead_jobs(session: Session, days: int, now: datetime) -> int:
    """Delete resolved/discarded dead jobs past retention; open, requeued and needs-review jobs always stay."""
    ids = resolved_dead_jobs_older_than(session, days, now)
    for part in chunked(ids):
        session.execute(delete(DeadJob).where(DeadJob.id.in_(part)).execution_options(synchronize_session=False))
    return len(ids)
