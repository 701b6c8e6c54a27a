"""The one batch task every bulk action maps over, and the isolation of bad companies.

A batch is one task run: a range of the action's outcome positions (``core.batching``), processed in provider
calls of the action's call unit (10 texts to embed, 5 websites, 3 companies to score).  The task is a
checkpoint: its result is persisted and cached on ``INPUTS + TASK_SOURCE``, and its inputs are plain values
(block references, never clients; a position range, never ids) that include the bulk action id, so rerunning
the same bulk action after a crash skips every batch that had completed without calling the provider again,
while a new bulk action over the same companies does real work.  Inside a batch, each call commits its
outcomes before the next starts and only pending companies are sent, so a batch that dies half-way resumes
without paying again for the calls it had finished.

Retries have one owner per layer (see ``core.errors``): provider clients retry transient provider errors; this
module isolates the company that still fails by retrying the batch company by company, so one poison company
becomes one dead job and never sinks its neighbours; Prefect's task retries cover only infrastructure errors
(the database going away), never provider errors.
"""

from __future__ import annotations

import importlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from prefect import Task, get_run_logger, task
from prefect.cache_policies import INPUTS, TASK_SOURCE
from prefect.client.schemas.objects import State, TaskRun
from prefect.tasks import exponential_backoff
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from blocks.database import CompanyDatabase
from blocks.loading import load_database
from core import group_commit
from core.batching import calls_of
from core.catalog import get_action
from core.company_checks import check_company
from core.errors import ActionStopError, InvalidInputError
from core.schema import OutcomeStatus
from core.store import CompanyResult, batch_members, company_identities, flag_for_review, record_results
from tasks import circuit_guard
from tasks.metering import Meter

INFRASTRUCTURE_ERRORS: tuple[type[BaseException], ...] = (OperationalError, DBAPIError, ConnectionError)


@dataclass
class BatchContext:
    """What a handler needs: where to write, which provider to call, the action's options."""

    action: str
    bulk_action_id: int
    database: CompanyDatabase
    provider: str
    options: dict[str, Any]
    provider_calls: int = 0
    pending_writes: list[Callable[[Session], None]] = field(default_factory=list)
    _meter: Meter | None = None

    @property
    def spent_nanousd(self) -> int:
        """What this batch's calls have cost so far (0 when nothing went through the meter)."""
        return self._meter.spent_nanousd if self._meter is not None else 0

    @property
    def meter(self) -> Meter:
        """The batch's spend control (built on first use: free actions never read the budgets)."""
        if self._meter is None:
            self._meter = Meter.for_batch(self.database, self.bulk_action_id, self.action)
        return self._meter

    def count_call(self, n: int = 1) -> None:
        self.provider_calls += n

    def write_with_outcomes(self, write: Callable[[Session], None]) -> None:
        """Run ``write`` in the transaction that records the batch's outcomes (see ``core.group_commit``)."""
        self.pending_writes.append(write)


Handler = Callable[[BatchContext, Sequence[int]], list[CompanyResult]]
_HANDLERS: dict[str, Handler] = {}


def register_handler(action: str) -> Callable[[Handler], Handler]:
    """Declare the function that processes one batch of ``action``; it may raise ``ProviderError``."""

    def decorate(fn: Handler) -> Handler:
        _HANDLERS[action] = fn
        return fn

    return decorate


#: where each action's handler lives; imported on first use so a flow loads only what it runs
HANDLER_MODULES: dict[str, str] = {
    "generate_embeddings": "tasks.embeddings",
    "enrich_companies": "tasks.enrichment",
    "score_llm_adoption": "tasks.scoring",
    "update_status": "tasks.update_status",
    "reclassify": "tasks.reclassify",
    "rollback": "tasks.rollback",
    "dedup_sweep": "tasks.dedup",
    "merge_companies": "tasks.merge",
}


def get_handler(action: str) -> Handler:
    if action not in _HANDLERS:
        importlib.import_module(HANDLER_MODULES[action])
    return _HANDLERS[action]


@dataclass(frozen=True)
class BatchReport:
    """What a batch returns (and what its checkpoint holds): counts only, never the companies' ids."""

    batch_index: int
    companies: int
    succeeded: int
    skipped: int
    failed: int
    provider_calls: int
    #: companies whose outcome a previous attempt of this batch had already recorded (a resumed batch)
    already_done: int = 0
    invalid_input: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    #: how this batch moved the action's outcome counts (``core.store.record_results``); the engine adds these up
    #: for its progress writes instead of recounting every outcome row
    count_changes: dict[str, int] = field(default_factory=dict)
    #: what the batch's provider calls cost (settled; a checkpointed batch costs nothing when restored)
    spent_nanousd: int = 0


def failure(company_id: int, error: BaseException, attempts: int) -> CompanyResult:
    return CompanyResult(
        company_id=company_id,
        status=OutcomeStatus.FAILED,
        detail=str(error)[:2000] or type(error).__name__,
        attempts=attempts,
        error_class=type(error).__name__,
        retryable=bool(getattr(error, "retryable", False)),
    )


def run_isolated(handler: Handler, ctx: BatchContext, company_ids: Sequence[int]) -> list[CompanyResult]:
    """Run the batch; if it fails as a whole, run it company by company so only the bad ones fail."""
    try:
        return handler(ctx, company_ids)
    except ActionStopError:
        raise
    except INFRASTRUCTURE_ERRORS:
        raise
    except Exception as batch_error:  # noqa: BLE001 - any company-level failure is isolated below
        first_attempts = getattr(batch_error, "attempts", 1)
        if len(company_ids) == 1:
            return [failure(company_ids[0], batch_error, first_attempts)]
        logger = get_run_logger()
        logger.warning(
            "batch of %d failed (%s); isolating company by company",
            len(company_ids),
            type(batch_error).__name__,
        )
        results: list[CompanyResult] = []
        for company_id in company_ids:
            try:
                results.extend(handler(ctx, [company_id]))
            except ActionStopError as stop:
                stop.completed = results + list(stop.completed)
                raise
            except INFRASTRUCTURE_ERRORS:
                raise
            except Exception as error:  # noqa: BLE001
                attempts = first_attempts + getattr(error, "attempts", 1)
                results.append(failure(company_id, error, attempts))
        return results


def retry_on_infrastructure_error(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    try:
        state.result()
    except INFRASTRUCTURE_ERRORS:
        return True
    except BaseException:  # noqa: BLE001
        return False
    return False


@task(
    name="process-batch",
    task_run_name="{action}-batch-{batch_index} ({provider})",
    cache_policy=INPUTS + TASK_SOURCE,
    persist_result=True,
    retries=3,
    retry_delay_seconds=exponential_backoff(backoff_factor=2),
    retry_condition_fn=retry_on_infrastructure_error,
)
def process_batch(
    action: str,
    bulk_action_id: int,
    batch_index: int,
    positions: tuple[int, int],
    call_size: int,
    database: str,
    provider: str,
    options: dict[str, Any],
) -> BatchReport:
    """Process the companies at ``positions`` of one bulk action, ``call_size`` per provider call.

    Only companies whose outcome is still pending are processed: a batch that died half-way (its process
    killed, or the database lost before Prefect's retry) never sends a company it had finished to the provider
    again.  Companies that fail the input checks fail without a provider call and are flagged for review.
    Each call's results commit with their outcomes before the next call starts.
    """
    ctx = BatchContext(
        action=action,
        bulk_action_id=bulk_action_id,
        database=load_database(database),
        provider=provider,
        options=options,
    )
    with circuit_guard.guarding(ctx.database):  # every provider call passes its provider's circuit breaker
        return _process_pending(ctx, batch_index, positions, call_size)


def _process_pending(ctx: BatchContext, batch_index: int, positions: tuple[int, int], call_size: int) -> BatchReport:
    action, bulk_action_id = ctx.action, ctx.bulk_action_id
    with ctx.database.read_session() as session:
        members = batch_members(session, bulk_action_id, *positions)
    pending = [cid for cid, status in members if status is OutcomeStatus.PENDING]
    tally = _Tally()
    invalid = _invalid_inputs(ctx, pending)
    if invalid:
        results = [invalid_input(cid, reason) for cid, reason in invalid.items()]
        tally.add(results, _commit(ctx, results, lambda session: flag_for_review(session, invalid)))
    handler = get_handler(action)
    for call in calls_of([cid for cid in pending if cid not in invalid], call_size):
        try:
            results = run_isolated(handler, ctx, call)
        except ActionStopError as stop:
            # What was paid for is recorded; the rest stays pending for the resumed action.  Raising fails this
            # task run, so it is not cached and the resume processes the batch's pending companies again.
            done: list[CompanyResult] = list(stop.completed)
            tally.add(done, _commit(ctx, done, *ctx.pending_writes))
            stop.count_changes = {k: v for k, v in tally.count_changes.items() if v}  # for the engine's progress
            raise
        missing = set(call) - {r.company_id for r in results}
        if missing:
            raise RuntimeError(f"handler for {action} returned no outcome for companies {sorted(missing)}")
        tally.add(results, _commit(ctx, results, *ctx.pending_writes))
        ctx.pending_writes.clear()
    return BatchReport(
        spent_nanousd=ctx.spent_nanousd,
        batch_index=batch_index,
        companies=len(members),
        succeeded=tally.statuses[OutcomeStatus.SUCCEEDED],
        skipped=tally.statuses[OutcomeStatus.SKIPPED],
        failed=tally.statuses[OutcomeStatus.FAILED],
        provider_calls=ctx.provider_calls,
        already_done=len(members) - len(pending),
        invalid_input=len(invalid),
        errors=dict(tally.errors),
        count_changes={k: v for k, v in tally.count_changes.items() if v},
    )


@dataclass
class _Tally:
    statuses: Counter[OutcomeStatus] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    count_changes: Counter[str] = field(default_factory=Counter)

    def add(self, results: Sequence[CompanyResult], count_changes: dict[str, int]) -> None:
        self.statuses.update(r.status for r in results)
        self.errors.update(r.error_class or "Error" for r in results if r.status is OutcomeStatus.FAILED)
        self.count_changes.update(count_changes)


def _commit(ctx: BatchContext, results: list[CompanyResult], *writes: Callable[[Session], None]) -> dict[str, int]:
    """Commit ``writes`` and the results' outcomes in one transaction; returns how the outcome counts moved."""
    count_changes: dict[str, int] = {}

    def write_outcomes(session: Session) -> None:
        # assigned, not accumulated: a failed group commit replays this write in a transaction of its own
        count_changes.clear()
        count_changes.update(record_results(session, ctx.bulk_action_id, ctx.action, results))

    group_commit.commit(ctx.database.get_engine(), [*writes, write_outcomes])
    return count_changes


def _invalid_inputs(ctx: BatchContext, company_ids: Sequence[int]) -> dict[int, str]:
    """Companies that must not reach a provider, with the reason (``core.company_checks``)."""
    spec = get_action(ctx.action)
    if not company_ids or not spec.checks_input:
        return {}
    website_required = spec.website_required
    with ctx.database.read_session() as session:
        rows = company_identities(session, company_ids)
    reasons: dict[int, str] = {}
    for cid, name, website in rows:
        reason = check_company(name, website if website_required else None, website_required=website_required)
        if reason is not None:
            reasons[cid] = reason
    return reasons


def invalid_input(company_id: int, reason: str) -> CompanyResult:
    return failure(company_id, InvalidInputError(reason), attempts=0)
