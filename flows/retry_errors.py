"""retry_errors: a new bulk action over the companies another bulk action failed on.

It inherits the action, the provider and the options it started with, forces reprocessing where the action
would otherwise skip a company whose result looks current (``rescore`` for scoring, ``force`` for reclassify),
and records ``retry_of`` on the new action, so the two are linked both ways (the new action's parameters name
the old one; the old one's failed outcomes are the new one's selection).  Works for every engine action, which
is what the dead-job review and people both need.
"""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.client.schemas.objects import State
from prefect.task_runners import ThreadPoolTaskRunner

import blocks.embeddings  # noqa: F401 - register every provider block type a retried action may name
import blocks.enrichment  # noqa: F401
import blocks.llm  # noqa: F401
import blocks.local_database  # noqa: F401
from blocks.loading import load_database
from core.catalog import DEFAULT_MAX_COMPANIES
from core.errors import InputError
from core.schema import BulkAction
from core.selection import ActionCompanies, Selection
from flows.engine import BULK_ACTION_HOOKS, BulkActionRequest, BulkActionSummary, DryRunReport, run_bulk_action

#: the option that makes each action redo a company whose stored result looks current
FORCE_OPTION: dict[str, str] = {"score_llm_adoption": "rescore", "reclassify": "force"}
RETRYABLE = ("generate_embeddings", "enrich_companies", "score_llm_adoption", "update_status", "reclassify")


@flow(
    name="retry-errors",
    task_runner=ThreadPoolTaskRunner(max_workers=16),  # type: ignore[arg-type]
    validate_parameters=True,
    **BULK_ACTION_HOOKS,
)
def retry_errors(
    retry_of: int,
    database: str = "default",
    created_by: str = "prefect",
    budget_usd: float | None = None,
    failure_threshold: float = 0.5,
    progress_every: int = 5,
    max_companies: int = DEFAULT_MAX_COMPANIES,
    dry_run: bool = False,
) -> BulkActionSummary | DryRunReport | State[Any]:
    """Rerun the failed companies of bulk action ``retry_of`` as a new bulk action.

    Args:
        retry_of: the bulk action whose failed companies to retry.
        database: name of the company-database block.
        created_by: who asked, recorded on the new bulk action.
        budget_usd: the most the retry may spend, USD.
        failure_threshold: share of failed companies above which the retry ends ``failed``.
        progress_every: write progress to the database every this many batches.
        max_companies: refuse retries of more companies than this.
        dry_run: report the companies (and the estimate) without writing anything.
    """
    with load_database(database).read_session() as session:
        original = session.get(BulkAction, retry_of)
        if original is None:
            raise InputError(f"bulk action {retry_of} does not exist")
        action, stored = original.action, dict(original.parameters or {})
    if action not in RETRYABLE:
        raise InputError(f"bulk action {retry_of} is a {action!r} action; retry_errors reruns {', '.join(RETRYABLE)}")
    options = dict(stored.get("options") or {})
    if action in FORCE_OPTION:
        options[FORCE_OPTION[action]] = True
    return run_bulk_action(
        BulkActionRequest(
            action=action,
            selection=Selection(from_action=ActionCompanies(bulk_action_id=retry_of, outcome="failed")),
            provider=str(stored["provider"]),
            database=database,
            created_by=created_by,
            failure_threshold=failure_threshold,
            progress_every=progress_every,
            max_companies=max_companies,
            dry_run=dry_run,
            options=options,
            budget_usd=budget_usd,
            allow_unpriced=bool(stored.get("allow_unpriced", False)),
            retry_of=retry_of,
        )
    )


if __name__ == "__main__":
    retry_errors(0)
