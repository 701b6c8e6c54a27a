"""reclassify: sector (NACE section), subsector (division) and business model from the versioned taxonomy.

Local mode runs the deterministic rules of ``core.classify_rules`` (the NACE code first, keywords of the
industry and activity text otherwise): no API, no cost, thousands of companies a second.  LLM mode asks an
Anthropic model, one request per company, through Message Batches at half price, in rounds that never hold a
worker while the batches process (``flows.reclassify_llm``); an answer outside the taxonomy flags the company
``needs_review``, a request that errored or expired fails it for ``retry_errors``.  Only outdated
companies are reclassified unless ``force``; ``target_column`` reclassifies one field.  Every changed field gets
a ``company_history`` row in the transaction of the change, so ``rollback`` can undo the action.
"""

from __future__ import annotations

from typing import Any, Literal

from prefect import flow
from prefect.client.schemas.objects import State
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import Field

import blocks.local_database  # noqa: F401 - registers the block type that ``provider`` references
from core.catalog import DEFAULT_MAX_COMPANIES, get_action
from core.reclassify import check_target_column
from core.selection import Selection, selection_of
from flows.engine import BULK_ACTION_HOOKS, BulkActionRequest, BulkActionSummary, DryRunReport, run_bulk_action
from flows.reclassify_llm import DEFAULT_POLL_SECONDS, DEFAULT_RECHECK_SECONDS, DEFAULT_WAIT_SECONDS

DEFAULT_PROVIDER = get_action("reclassify").default_provider
#: where LLM mode runs unless told otherwise: an Anthropic LLM block (create it in the UI: Blocks → Anthropic LLM)
DEFAULT_LLM_PROVIDER = "anthropic-llm/default"


@flow(
    name="reclassify",
    task_runner=ThreadPoolTaskRunner(max_workers=4),  # type: ignore[arg-type]
    validate_parameters=True,
    **BULK_ACTION_HOOKS,
)
def reclassify(
    selection: Selection | None = None,
    company_ids: list[int] | None = None,
    mode: Literal["local", "llm"] = "local",
    force: bool = False,
    target_column: Literal["sector", "subsector", "business_model"] | None = None,
    provider: str | None = None,
    model: str | None = None,
    max_tokens: int = Field(default=200, ge=16, le=4096),
    web_search: bool = False,
    poll_seconds: float = Field(default=DEFAULT_POLL_SECONDS, gt=0),
    wait_seconds: float = Field(default=DEFAULT_WAIT_SECONDS, ge=0),
    recheck_seconds: float = Field(default=DEFAULT_RECHECK_SECONDS, gt=0),
    budget_usd: float | None = None,
    database: str = "default",
    created_by: str = "prefect",
    bulk_action_id: int | None = None,
    failure_threshold: float = 0.5,
    progress_every: int = 5,
    max_companies: int = DEFAULT_MAX_COMPANIES,
    takeover: bool = False,
    dry_run: bool = False,
) -> BulkActionSummary | DryRunReport | State[Any]:
    """Classify the selected companies' sector, subsector and business model, with history.

    Args:
        selection: which companies (explicit ids, a filter, another action's companies); its ``limit`` caps
            how many.
        company_ids: shorthand for ``selection={"ids": [...]}``.
        mode: ``local``: deterministic rules from the NACE code and the activity text (no provider, no cost);
            ``llm``: an Anthropic model through Message Batches (half the Messages price), in sub-batches of 100.
        force: reclassify companies whose classification is current (same taxonomy version and input text).
        target_column: reclassify only this field (column mode, a shorter prompt); the others keep their values.
        provider: local mode: the block that holds its concurrency tag (``local-database-writes/default``); LLM
            mode: an ``anthropic-llm`` block (``anthropic-llm/default``).
        model: LLM mode: the model (default: the block's).
        max_tokens: LLM mode: the longest answer a request may produce (and pay for).
        web_search: LLM mode: give each request Anthropic's web search tool ($10 per 1,000 searches).
        poll_seconds: LLM mode: how often the batches are polled.
        wait_seconds: LLM mode, deployed runs: how long one flow run polls before handing over to a continuation.
        recheck_seconds: LLM mode, deployed runs: when the continuation looks again.
        budget_usd: LLM mode: the action's spend cap; each sub-batch's worst case is reserved before its POST.
        database: name of the company-database block.
        created_by: who asked, recorded on the bulk action.
        bulk_action_id: resume this bulk action (after a crash or cancellation); the options it started with apply.
        failure_threshold: share of failed companies above which the action ends ``failed``.
        progress_every: write progress to the database every this many batches.
        max_companies: refuse selections larger than this.
        takeover: with ``bulk_action_id``, take the action over from a flow run whose process is gone.
        dry_run: resolve the selection and report its size and a sample; write nothing.
    """
    check_target_column(target_column)
    options: dict[str, Any] = {"mode": mode, "force": force}
    if target_column is not None:
        options["target_column"] = target_column
    if mode == "llm":
        options.update(
            model=model,
            max_tokens=max_tokens,
            web_search=web_search,
            poll_seconds=poll_seconds,
            wait_seconds=wait_seconds,
            recheck_seconds=recheck_seconds,
        )
    return run_bulk_action(
        BulkActionRequest(
            action="reclassify",
            selection=selection_of(company_ids, selection),
            # a resume without a provider runs on the one the action started with (``as_started``)
            provider=provider or (DEFAULT_LLM_PROVIDER if mode == "llm" and not bulk_action_id else DEFAULT_PROVIDER),
            budget_usd=budget_usd,
            database=database,
            created_by=created_by,
            bulk_action_id=bulk_action_id,
            failure_threshold=failure_threshold,
            progress_every=progress_every,
            max_companies=max_companies,
            takeover=takeover,
            dry_run=dry_run,
            options=options,
        )
    )


if __name__ == "__main__":
    reclassify()
