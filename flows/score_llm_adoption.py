"""score_llm_adoption: ten criteria, one LLM call each, a 0-50 total per company, paced to the provider's limit."""

from __future__ import annotations

from typing import Any, Literal

from prefect import flow
from prefect.client.schemas.objects import State
from prefect.task_runners import ThreadPoolTaskRunner

import blocks.llm  # noqa: F401 - registers the LLM block types that ``provider`` references
from core.catalog import DEFAULT_MAX_COMPANIES, get_action
from core.selection import Selection, selection_of
from core.tiering import EscalationRule, Tiers
from flows.engine import BULK_ACTION_HOOKS, BulkActionRequest, BulkActionSummary, DryRunReport, run_bulk_action
from tasks.scoring import load_llm_block

DEFAULT_LLM_PROVIDER = get_action("score_llm_adoption").default_provider


@flow(
    name="score-llm-adoption",
    task_runner=ThreadPoolTaskRunner(max_workers=16),  # type: ignore[arg-type]
    validate_parameters=True,
    **BULK_ACTION_HOOKS,
)
def score_llm_adoption(
    selection: Selection | None = None,
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
    dry_run: bool = False,
    shards: int = 1,
    shard_index: int | None = None,
    budget_usd: float | None = None,
    allow_unpriced: bool = False,
    tiers: list[str] | None = None,
    escalation: EscalationRule | None = None,
    cheap_prompt: Literal["combined", "per_criterion"] = "combined",
) -> BulkActionSummary | DryRunReport | State[Any]:
    """Score each company's LLM adoption on the ten rubric criteria and store the eleven scores.

    Args:
        selection: which companies to score: explicit ids, a filter over the company table, or the companies of
            another bulk action by outcome, plus a limit and an order (see the README).  Leave it empty with
            ``bulk_action_id`` to resume that action.
        company_ids: shorthand for ``selection={"ids": [...]}`` (small hand-picked sets).
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
        dry_run: resolve the selection and report its size and a sample; write nothing, call nothing.
        shards: spread the action over this many child flow runs on the work pool (several workers).
        shard_index: set by the parent on each child; with ``bulk_action_id`` and ``takeover``, reruns one shard.
        budget_usd: the most this action may spend, USD; no call starts that could pass it, and reaching it
            pauses the action (resume with a raised budget).  With ``bulk_action_id``, sets a new budget.
        allow_unpriced: run a paid model that has no price (its calls are recorded at $0, marked unpriced);
            otherwise such a run is refused before it starts.
        tiers: tiered scoring: LLM blocks cheapest first, ending with ``provider`` (the premium one), e.g.
            ``["groq-llm/small", "groq-llm/default"]``; a company goes up a tier only when ``escalation`` finds
            the cheaper tier's result uncertain.
        escalation: when a tier's result is uncertain: a total within ``margin`` of a band edge, or a criterion
            it could not decide (default: edges 15 and 30, margin 3).
        cheap_prompt: how the cheaper tiers ask: ``combined`` (all ten criteria in one call, about a fifth of
            the input tokens) or ``per_criterion`` (ten calls, as the premium tier asks).
    """
    # Build the client first: a provider that cannot be paced (its ``window:<tag>`` limit is missing) stops the
    # run here with a ConfigurationError, before a bulk action is recorded, instead of failing every company.
    # A rerun has its record already and runs on the provider it started with, which the engine resolves.
    if bulk_action_id is None:
        for reference in tiers or [provider]:
            load_llm_block(reference).get_client()
    options: dict[str, Any] = {"rescore": rescore}
    if tiers:
        Tiers.of(tiers, provider)  # the last tier must be the provider the engine holds slots for
        options["tiers"] = list(tiers)
        options["escalation"] = (escalation or EscalationRule()).model_dump(mode="json")
        options["cheap_prompt"] = cheap_prompt
    return run_bulk_action(
        BulkActionRequest(
            action="score_llm_adoption",
            selection=selection_of(company_ids, selection),
            provider=provider,
            database=database,
            created_by=created_by,
            priority=priority,
            bulk_action_id=bulk_action_id,
            failure_threshold=failure_threshold,
            progress_every=progress_every,
            max_companies=max_companies,
            takeover=takeover,
            dry_run=dry_run,
            shards=shards,
            shard_index=shard_index,
            options=options,
            budget_usd=budget_usd,
            allow_unpriced=allow_unpriced,
        )
    )


if __name__ == "__main__":
    score_llm_adoption()
