"""score_llm_adoption: ten criteria, one LLM call each, a 0-50 total per company, paced to the provider's limit."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.client.schemas.objects import State
from prefect.task_runners import ThreadPoolTaskRunner

import blocks.llm  # noqa: F401 - registers the LLM block types that ``provider`` references
from core.catalog import DEFAULT_MAX_COMPANIES, get_action
from flows.engine import BULK_ACTION_HOOKS, BulkActionRequest, BulkActionSummary, run_bulk_action
from tasks.scoring import load_llm_block

DEFAULT_LLM_PROVIDER = get_action("score_llm_adoption").default_provider


@flow(
    name="score-llm-adoption",
    task_runner=ThreadPoolTaskRunner(max_workers=16),  # type: ignore[arg-type]
    validate_parameters=True,
    **BULK_ACTION_HOOKS,
)
def score_llm_adoption(
    company_ids: list[int] | None = None,
    provider: str = DEFAULT_LLM_PROVIDER,
    database: str = "default",
    created_by: str = "prefect",
    priority: int = 0,
    bulk_action_id: int | None = None,
    rescore: bool = False,
    failure_threshold: float = 0.5,
    progress_every: int = 5,
    max_companies: int = DEFAULT_MAX_COMPANIES,
    takeover: bool = False,
) -> BulkActionSummary | State[Any]:
    """Score each company's LLM adoption on the ten rubric criteria and store the eleven scores.

    Args:
        company_ids: companies to score; leave empty together with ``bulk_action_id`` to resume that action.
        provider: LLM block as ``<block-type>/<name>``: ``local-rules-llm/default`` (offline keyword rules),
            ``groq-llm/<name>`` or ``anthropic-llm/<name>``.
        database: name of the company-database block.
        created_by: who asked, recorded on the bulk action.
        priority: recorded on the bulk action (higher runs first in scheduled work).
        bulk_action_id: rerun this bulk action (after a crash or cancellation) from its checkpoints.
        rescore: score again even companies whose scores by this model are current (same profile and rubric).
        failure_threshold: share of failed companies above which the action ends ``failed``.
        progress_every: write progress to the database every this many batches.
        max_companies: refuse selections larger than this.
        takeover: with ``bulk_action_id``, take the action over from a flow run whose process is gone.
    """
    # Build the client first: a provider that cannot be paced (its ``window:<tag>`` limit is missing) stops the
    # run here with a ConfigurationError, before a bulk action is recorded, instead of failing every company.
    # A rerun has its record already and runs on the provider it started with, which the engine resolves.
    if bulk_action_id is None:
        load_llm_block(provider).get_client()
    return run_bulk_action(
        BulkActionRequest(
            action="score_llm_adoption",
            company_ids=company_ids or [],
            provider=provider,
            database=database,
            created_by=created_by,
            priority=priority,
            bulk_action_id=bulk_action_id,
            failure_threshold=failure_threshold,
            progress_every=progress_every,
            max_companies=max_companies,
            takeover=takeover,
            options={"rescore": rescore},
        )
    )


if __name__ == "__main__":
    score_llm_adoption()
