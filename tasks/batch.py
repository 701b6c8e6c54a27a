"""The one batch task every bulk action maps over, and the isolation of bad companies.

A batch is the provider call unit of an action (10 texts to embed, 5 websites, 3 companies to score).  The task
is a checkpoint: its result is persisted and cached on ``INPUTS + TASK_SOURCE``, and its inputs are plain values
(block references, never clients) that include the bulk action id, so rerunning the same bulk action after a
crash skips every batch that had completed without calling the provider again, while a new bulk action over the
same companies does real work.

Retries have one owner per layer (see ``core.errors``): provider clients retry transient provider errors; this
module isolates the company that still fails by retrying the batch company by company, so one poison company
becomes one dead job and never sinks its neighbours; Prefect's task retries cover only infrastructure errors
(the database going away), never provider errors.
"""

from __future__ import annotations

import importlib
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
from core.schema import OutcomeStatus
from core.store import CompanyResult, record_results

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
}


def get_handler(action: str) -> Handler:
    if action not in _HANDLERS:
        importlib.import_module(HANDLER_MODULES[action])
    return _HANDLERS[action]


@dataclass(frozen=True)
class BatchReport:
    """What a batch returns (and what its checkpoint holds)."""

    batch_index: int
    company_ids: tuple[int, ...]
    succeeded: int
    skipped: int
    failed: int
    provider_calls: int
    errors: dict[str, int] = field(default_factory=dict)
    #: how this batch moved the action's outcome counts (``core.store.record_results``); the engine adds these up
    #: for its progress writes instead of recounting every outcome row
    count_changes: dict[str, int] = field(default_factory=dict)


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
            except INFRASTRUCTURE_ERRORS:
                raise
            except Exception as error:  # noqa: BLE001
                attempts = first_attempts + getattr(error, "attempts", 1)
                results.append(failure(company_id, error, attempts))
        return results


def _retry_on_infrastructure_error(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
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
    retry_condition_fn=_retry_on_infrastructure_error,
)
def process_batch(
    action: str,
    bulk_action_id: int,
    batch_index: int,
    company_ids: tuple[int, ...],
    database: str,
    provider: str,
    options: dict[str, Any],
) -> BatchReport:
    """Process one batch of one bulk action and record every company's outcome."""
    ctx = BatchContext(
        action=action,
        bulk_action_id=bulk_action_id,
        database=load_database(database),
        provider=provider,
        options=options,
    )
    results = run_isolated(get_handler(action), ctx, company_ids)
    missing = set(company_ids) - {r.company_id for r in results}
    if missing:
        raise RuntimeError(f"handler for {action} returned no outcome for companies {sorted(missing)}")
    count_changes: dict[str, int] = {}

    def write_outcomes(session: Session) -> None:
        # assigned, not accumulated: a failed group commit replays this write in a transaction of its own
        count_changes.clear()
        count_changes.update(record_results(session, bulk_action_id, action, results))

    group_commit.commit(ctx.database.get_engine(), [*ctx.pending_writes, write_outcomes])
    errors: dict[str, int] = {}
    for r in results:
        if r.status is OutcomeStatus.FAILED:
            errors[r.error_class or "Error"] = errors.get(r.error_class or "Error", 0) + 1
    return BatchReport(
        batch_index=batch_index,
        company_ids=tuple(company_ids),
        succeeded=sum(r.status is OutcomeStatus.SUCCEEDED for r in results),
        skipped=sum(r.status is OutcomeStatus.SKIPPED for r in results),
        failed=sum(r.status is OutcomeStatus.FAILED for r in results),
        provider_calls=ctx.provider_calls,
        errors=errors,
        count_changes=count_changes,
    )
