"""A bulk action's dry run: the companies selected, the provider calls, the cost and the duration; nothing written.

This is the Prefect side of ``core.estimates``: it loads the provider blocks (models, processors, pacing),
reads the provider's ``tag:<tag>`` limit (and ``window:<tag>`` for paced LLMs) from the Prefect server, and
samples the selection and the spend ledger in a read-only transaction; the arithmetic is core's.  Nothing is
written anywhere but the run's own markdown artifact and log, and no provider is contacted: an HTTP client is
built only to learn a model's name (building one opens no connection), and the local model is never loaded.
``reclassify(mode="llm")`` is estimated as the Message Batches requests it would send (``core.estimate_reclassify``);
local mode as a database-only action.
"""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound
from sqlalchemy.orm import Session

from blocks.database import CompanyDatabase
from blocks.embeddings import LocalMiniLMEmbeddings, WorkersAIEmbeddings
from blocks.loading import load_provider_block
from blocks.spend import load_spend_policy
from core.catalog import get_action
from core.errors import InputError, MissingProviderLimitError
from core.estimate_inputs import ledger_history, sample_companies, tier_history
from core.estimate_model import (
    LLM_SECONDS_PER_CALL,
    LOCAL_MINILM_SECONDS_PER_TEXT,
    LOCAL_SECONDS_PER_CALL,
    WORKERS_AI_REQUESTS_PER_MINUTE,
    Estimate,
    LLMTier,
    Pace,
    Slots,
    format_duration,
)
from core.estimate_reclassify import classify_sample, estimate_reclassify_llm, past_requests
from core.estimates import (
    EmbeddingModel,
    estimate_embeddings,
    estimate_enrichment,
    estimate_local,
    estimate_scoring,
)
from core.pricing import FREE_PROVIDERS, PriceBook, format_usd, nano_to_usd
from core.reclassify_llm import PROVIDER as BATCHES_PROVIDER
from core.reclassify_llm import LLMOptions
from core.scores import current_input_hashes
from core.selection import preview
from core.store import embedding_inputs
from core.tiering import Tiers
from flows.bulk_types import BulkActionRequest, DryRunReport
from flows.provider_slots import provider_limit
from flows.reclassify_llm import DEFAULT_RECHECK_SECONDS, message_batches_block, uses_message_batches
from providers.pacing import window_limit_name


def dry_run(db: CompanyDatabase, request: BulkActionRequest) -> DryRunReport:
    """Resolve the selection, estimate what running it would take, and report it (artifact and log)."""
    if request.selection is None:
        raise InputError("dry_run needs a selection (a rerun's companies are already recorded)")
    block = load_provider_block(request.provider)
    slots = Slots(str(block.concurrency_tag), _tag_limit(str(block.concurrency_tag)), _calls_per_batch(block))
    prices = load_spend_policy().price_book()
    with db.read_session() as session:
        found = preview(session, request.selection)
        estimate = _estimate(session, request, block, slots, prices, found.count)
    report = DryRunReport(
        action=request.action,
        count=found.count,
        sample=found.sample,
        skipped=estimate.skipped,
        invalid_input=estimate.invalid_input,
        provider_calls=estimate.provider_calls,
        estimated_cost_nanousd=estimate.estimated_cost_nanousd,
        estimated_cost_usd=nano_to_usd(estimate.estimated_cost_nanousd),
        expected_seconds=round(estimate.expected_seconds, 1),
        assumptions=list(estimate.assumptions),
    )
    _publish(request, report)
    return report


def _estimate(
    session: Session, request: BulkActionRequest, block: Any, slots: Slots, prices: PriceBook, count: int
) -> Estimate:
    if uses_message_batches(request):
        return _reclassify_llm(session, request, slots, prices, count)
    kind = get_action(request.action).provider_kind
    if kind not in ("llm", "enrichment", "embeddings"):
        return estimate_local(request.action, count, slots)
    assert request.selection is not None
    sample = sample_companies(session, request.selection, count)
    ids = [c.id for c in sample]
    if kind == "llm":
        references = Tiers.of(request.options.get("tiers"), request.provider).providers
        combined = request.options.get("cheap_prompt", "combined") == "combined"
        tiers = [
            _llm_tier(session, reference, ids, combined=combined and i < len(references) - 1)
            for i, reference in enumerate(references)
        ]
        return estimate_scoring(
            count,
            sample,
            tiers,
            prices,
            slots,
            rescore=bool(request.options.get("rescore", False)),
            tier_history=tier_history(session, len(tiers)),
            allow_unpriced=request.allow_unpriced,
        )
    if kind == "enrichment":
        return estimate_enrichment(
            count, sample, str(block.processor), prices, slots, max_active_runs=block.max_active_runs
        )
    model = _embedding_model(session, request.provider, block)
    current = {row.id: row.current_sha256 for row in embedding_inputs(session, ids, model.model_id)}
    return estimate_embeddings(count, sample, current, model, prices, slots)


def _reclassify_llm(
    session: Session, request: BulkActionRequest, slots: Slots, prices: PriceBook, count: int
) -> Estimate:
    """LLM reclassify: the requests its Message Batches would carry, priced from the ledger's history of the model."""
    assert request.selection is not None
    block = message_batches_block(request.provider)  # refuses a block that is not anthropic-llm, as the real run does
    options = LLMOptions.of(request.options, str(block.model))
    ids = [c.id for c in sample_companies(session, request.selection, count)]
    return estimate_reclassify_llm(
        count,
        classify_sample(session, ids),
        options,
        prices,
        slots,
        force=bool(request.options.get("force", False)),
        history=past_requests(session, options.model),
        messages_history=ledger_history(session, [BATCHES_PROVIDER], options.model),
        recheck_seconds=float(request.options.get("recheck_seconds") or DEFAULT_RECHECK_SECONDS),
    )


def _llm_tier(session: Session, reference: str, ids: list[int], *, combined: bool = False) -> LLMTier:
    """An LLM block as the estimate sees it: its model, its ledger history, who it has scored, its pacing."""
    block = load_provider_block(reference)
    client = block.get_client()
    provider, model = str(client.provider), str(client.model)
    local = provider in FREE_PROVIDERS
    return LLMTier(
        reference=reference,
        provider=provider,
        model=model,
        history=ledger_history(session, [provider], model),
        current=current_input_hashes(session, ids, provider, model),
        pace=_pace(block),
        seconds_per_call=LOCAL_SECONDS_PER_CALL if local else LLM_SECONDS_PER_CALL,
        combined=combined,
    )


def _pace(block: Any) -> Pace | None:
    """The requests per window the block's pacer holds: its own limit, or the shared ``window:<tag>`` if lower."""
    per_window = getattr(block, "requests_per_minute", None)
    if per_window is None:
        return None
    shared = _limit(window_limit_name(str(block.concurrency_tag))) if getattr(block, "share_budget", False) else None
    return Pace(min(int(per_window), shared or int(per_window)), float(block.rate_window_seconds))


def _embedding_model(session: Session, reference: str, block: Any) -> EmbeddingModel:
    if isinstance(block, LocalMiniLMEmbeddings):
        from providers.local_minilm import MODEL_ID  # the constant only: the model itself is never loaded

        return EmbeddingModel(
            reference, "local-minilm", MODEL_ID, MODEL_ID, seconds_per_call=10 * LOCAL_MINILM_SECONDS_PER_TEXT
        )
    client = block.get_client()  # an HTTP client: built to learn its names, never used
    provider, model = str(client.provider), str(client.price_model)
    pace = Pace(WORKERS_AI_REQUESTS_PER_MINUTE, 60.0) if isinstance(block, WorkersAIEmbeddings) else None
    history = ledger_history(session, [provider], model)
    return EmbeddingModel(reference, provider, model, str(client.model_id), history, pace=pace)


def _calls_per_batch(block: Any) -> int:
    return max(1, int(getattr(block, "calls_per_batch", 1)))


def _tag_limit(tag: str) -> int | None:
    """The provider's ``tag:<tag>`` limit; None when it is missing (the estimate says the real run would stop)."""
    with get_client(sync_client=True) as client:
        try:
            return provider_limit(client, tag)
        except MissingProviderLimitError:
            return None


def _limit(name: str) -> int | None:
    with get_client(sync_client=True) as client:
        try:
            return int(client.read_global_concurrency_limit_by_name(name).limit)
        except ObjectNotFound:
            return None


def _publish(request: BulkActionRequest, report: DryRunReport) -> None:
    """The markdown artifact and the log line of a dry run."""
    assert request.selection is not None
    rows = "\n".join(
        f"| {row['id']} | {row['name']} | {row.get('country') or ''} | {row.get('industry') or ''} | "
        f"{row.get('priority', '')} |"
        for row in report.sample
    )
    cost = format_usd(report.estimated_cost_nanousd)
    duration = format_duration(report.expected_seconds)
    estimate = (
        "| estimate | value |\n| --- | --- |\n"
        f"| companies selected | {report.count:,} |\n"
        f"| skipped (results already current) | {report.skipped:,} |\n"
        f"| failing input checks (no call, no cost) | {report.invalid_input:,} |\n"
        f"| provider calls | {report.provider_calls:,} |\n"
        f"| estimated cost | {cost} |\n"
        f"| expected duration | {duration} |\n"
    )
    assumptions = "\n".join(f"- {line}" for line in report.assumptions)
    create_markdown_artifact(
        f"## Dry run: {request.action} would run on {report.count} companies\n\n"
        f"Nothing was written and no provider was called. "
        f"Selection: `{request.selection.model_dump_json(exclude_none=True)}`; provider `{request.provider}`\n\n"
        f"{estimate}\n### Assumptions\n\n{assumptions}\n\n### First companies\n\n"
        "| id | name | country | industry | priority |\n| --- | --- | --- | --- | --- |\n" + rows,
        description=f"dry run of {request.action}: {report.count} companies, ~{cost}, ~{duration}",
    )
    logger = get_run_logger()
    logger.info(
        "dry run: %s would run on %d companies (~%d skipped, ~%d failing input checks): ~%d provider calls, "
        "~%s, ~%s with %s; nothing written",
        request.action,
        report.count,
        report.skipped,
        report.invalid_input,
        report.provider_calls,
        cost,
        duration,
        request.provider,
    )
    if report.count > request.max_companies:
        logger.warning(
            "the selection is larger than max_companies=%d: the real run would be refused", request.max_companies
        )


def estimated_seconds(db: CompanyDatabase, request: BulkActionRequest, count: int) -> float | None:
    """The estimator's duration for a new action over ``count`` selected companies (the engine's "slower than
    its estimate" alert); None when there is no selection to sample (a rerun) or the estimate fails."""
    if request.selection is None or count <= 0:
        return None
    try:
        block = load_provider_block(request.provider)
        slots = Slots(str(block.concurrency_tag), _tag_limit(str(block.concurrency_tag)), _calls_per_batch(block))
        with db.read_session() as session:
            estimate = _estimate(session, request, block, slots, load_spend_policy().price_book(), count)
    except Exception as error:  # noqa: BLE001 - an estimate is advisory: no estimate, no slow alert
        get_run_logger().warning("no duration estimate for this action: %s", error)
        return None
    return float(estimate.expected_seconds)
