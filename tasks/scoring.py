"""The ``score_llm_adoption`` batch handler: ten criteria per company, one call each, sequential per company.

Each company is handled on its own inside the batch: a company whose provider calls fail (after the client's
retries) or whose answers never parse (after two more calls) is returned as a failed ``CompanyResult`` while
its batch-mates go on.  Raising instead would make ``run_isolated`` rerun the whole batch company by company
and pay again for the companies that had already been scored.

A company's eleven scores are written in one transaction once all ten criteria have answered, so a crash
leaves a company fully scored or not at all; a new bulk action skips companies whose stored scores by the same
provider and model answer the same prompts (``input_sha256``), unless ``rescore`` is set.

Money: every call goes through the batch's meter (``tasks.metering``): its worst case (the prompt's bytes as
tokens, plus ``max_tokens``) is reserved against the budgets first, and its real cost (the provider's token
usage at the model's price) is settled after.  When a budget refuses a call, the criteria the company already
has are kept as rows of this action (``core.scores.criterion_rows``) and reused when it resumes: a pause never
pays for an answer twice.

Tiers (``options["tiers"]``, cheapest first): the company is scored by the first tier; if the escalation rule
(``core.tiering``) finds the result uncertain it is scored again by the next, and so on.  A cheaper tier asks all
ten criteria in one call (``core.rubric_combined``; ``options["cheap_prompt"] = "per_criterion"`` asks them one by
one instead), the last tier one call per criterion.  Every tier's rows are stored with their ``tier``; the
outcome names the tier that decided.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import cast

from prefect import get_run_logger

from blocks.llm import LLMBlock
from blocks.loading import load_provider_block
from core.errors import ActionStopError, InvalidProviderOutputError, ProviderError
from core.pricing import worst_case_input_tokens
from core.rubric import (
    CRITERIA,
    CompanyLike,
    Criterion,
    build_prompt,
    input_sha256,
    parse_judgement,
    repair_prompt,
    total_points,
)
from core.rubric_combined import build_combined_prompt, parse_combined
from core.schema import Company, OutcomeStatus
from core.scores import (
    CriterionScore,
    answered_criteria,
    criterion_rows,
    current_input_hashes,
    score_rows,
    store_scores,
    stored_levels,
)
from core.spend import LedgerEntry
from core.store import CompanyResult, load_companies
from core.tiering import EscalationRule, Tiers
from providers.llm import LLMClient, Messages
from tasks.batch import BatchContext, failure, register_handler
from tasks.metering import Meter

#: calls per criterion when the answer does not parse: the first and two more
PARSE_ATTEMPTS = 3


def load_llm_block(reference: str) -> LLMBlock:
    return cast(LLMBlock, load_provider_block(reference))


@dataclass(frozen=True)
class Payer:
    """Who pays for a company's calls: the batch's meter, for one company and tier (None: nobody counts)."""

    meter: Meter | None
    company_id: int
    tier: int | None = None

    def complete(self, client: LLMClient, messages: Messages) -> tuple[str, int, int]:
        """One metered call: its text and tokens."""
        if self.meter is None:
            completion = client.complete(messages)
            return completion.text, completion.prompt_tokens, completion.completion_tokens
        meter = self.meter
        texts = [m["content"] for m in messages]
        worst, _ = meter.llm_cost(client.provider, client.model, worst_case_input_tokens(texts), client.max_tokens)
        with meter.call(client.provider, worst) as bill:
            completion = client.complete(messages)
            cost, unpriced = meter.llm_cost(
                client.provider, client.model, completion.prompt_tokens, completion.completion_tokens
            )
            bill.add(
                LedgerEntry(
                    company_id=self.company_id,
                    provider=client.provider,
                    model=client.model,
                    cost_nanousd=cost,
                    input_tokens=completion.prompt_tokens,
                    output_tokens=completion.completion_tokens,
                    input_bytes=sum(len(t.encode("utf-8")) for t in texts),
                    unpriced=unpriced,
                    tier=self.tier,
                )
            )
        return completion.text, completion.prompt_tokens, completion.completion_tokens


def judge(
    client: LLMClient,
    company: CompanyLike,
    criterion: Criterion,
    *,
    on_call: Callable[[], None] = lambda: None,
    attempts: int = PARSE_ATTEMPTS,
    payer: Payer | None = None,
) -> CriterionScore:
    """One criterion's level; a reply that does not parse is answered with a request to fix the format.

    Raises ``InvalidProviderOutputError`` (with ``attempts`` set) when ``attempts`` calls gave nothing usable,
    lets the client's ``ProviderError`` through (it has been retried already), and ``BudgetReachedError`` when
    the next call could pass a budget (that call is not made).
    """
    payer = payer or Payer(None, 0)
    prompt = build_prompt(company, criterion)
    messages = prompt
    prompt_tokens = completion_tokens = 0
    last_error: InvalidProviderOutputError | None = None
    for attempt in range(1, attempts + 1):
        on_call()
        text, used_in, used_out = payer.complete(client, messages)
        prompt_tokens += used_in
        completion_tokens += used_out
        try:
            judgement = parse_judgement(text)
        except InvalidProviderOutputError as error:
            last_error = error
            messages = repair_prompt(prompt, text)
            continue
        return CriterionScore(
            criterion=criterion.key,
            level=judgement.level,
            reasoning=judgement.reasoning,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            calls=attempt,
        )
    exhausted = InvalidProviderOutputError(
        f"{criterion.name}: no valid answer in {attempts} calls ({last_error})", provider=client.provider
    )
    exhausted.attempts = attempts
    raise exhausted


@dataclass(frozen=True)
class TierResult:
    """One tier's verdict on one company."""

    total: int | None
    undecided: tuple[str, ...]
    calls: int
    error: ProviderError | None = None


@register_handler("score_llm_adoption")
def score_batch(ctx: BatchContext, company_ids: Sequence[int]) -> list[CompanyResult]:
    tiers = Tiers.of(ctx.options.get("tiers"), ctx.provider)
    rule = EscalationRule.model_validate(ctx.options.get("escalation") or {})
    clients = [load_llm_block(reference).get_client() for reference in tiers.providers]
    rescore = bool(ctx.options.get("rescore", False))
    with ctx.database.read_session() as session:
        companies = load_companies(session, company_ids)
        current = [current_input_hashes(session, company_ids, c.provider, c.model) for c in clients]
    found = {c.id for c in companies}
    results = [
        CompanyResult(cid, OutcomeStatus.SKIPPED, detail="company no longer exists", attempts=0)
        for cid in company_ids
        if cid not in found
    ]
    try:
        for company in companies:
            _score_company(ctx, company, tiers, rule, clients, current, rescore, results)
    except ActionStopError as stop:
        stop.completed = results  # recorded by the batch before it stops: these companies are done
        raise
    return results


def _score_company(
    ctx: BatchContext,
    company: Company,
    tiers: Tiers,
    rule: EscalationRule,
    clients: list[LLMClient],
    current: list[dict[int, str]],
    rescore: bool,
    results: list[CompanyResult],
) -> None:
    """Score one company tier by tier until a tier's result stands; append its outcome to ``results``."""
    digest = input_sha256(company)
    calls = 0
    for index, client in enumerate(clients):
        tier = index if tiers.tiered else None
        last = index == len(clients) - 1
        if not rescore and current[index].get(company.id) == digest:
            verdict = _stored(ctx, company.id, client)
        elif not last and ctx.options.get("cheap_prompt", "combined") == "combined":
            verdict = _score_combined(ctx, company, digest, client, tier)
        else:
            verdict = _score(ctx, company, digest, client, tier, strict=last)
        calls += verdict.calls
        if verdict.error is not None:
            results.append(failure(company.id, verdict.error, verdict.error.attempts))
            return
        why = None if last else rule.uncertainty(verdict.total, verdict.undecided)
        if why is None:
            results.append(_decided(company.id, client, verdict, calls, index, tiers))
            return
        get_run_logger().debug("company %d goes up from tier %d: %s", company.id, index, why)


def _decided(
    company_id: int, client: LLMClient, verdict: TierResult, calls: int, index: int, tiers: Tiers
) -> CompanyResult:
    where = f" (tier {index + 1} of {len(tiers.providers)})" if tiers.tiered else ""
    if calls == 0:
        detail = f"scores are current for this model{where}: total {verdict.total}/50"
        return CompanyResult(company_id, OutcomeStatus.SKIPPED, detail=detail, attempts=0)
    detail = f"total {verdict.total}/50 by {client.provider} {client.model}{where} in {calls} calls"
    return CompanyResult(company_id, OutcomeStatus.SUCCEEDED, detail=detail)


def _stored(ctx: BatchContext, company_id: int, client: LLMClient) -> TierResult:
    with ctx.database.read_session() as session:
        levels = stored_levels(session, company_id, client.provider, client.model)
    return TierResult(total=total_points(levels) if len(levels) == len(CRITERIA) else None, undecided=(), calls=0)


def _score(
    ctx: BatchContext, company: Company, digest: str, client: LLMClient, tier: int | None, *, strict: bool
) -> TierResult:
    """Ask ``client`` every criterion the action has not paid for yet and store the rows.

    ``strict`` (the last tier): a criterion without a valid answer fails the company.  A cheaper tier instead
    reports it undecided, and its provider failures too, so the company goes up a tier.
    """
    payer = Payer(ctx.meter, company.id, tier)
    with ctx.database.read_session() as session:
        answered = answered_criteria(
            session,
            company.id,
            bulk_action_id=ctx.bulk_action_id,
            provider=client.provider,
            model=client.model,
            input_sha256=digest,
        )
    scores = dict(answered)
    undecided: list[str] = []
    calls_before = ctx.provider_calls
    try:
        for criterion in CRITERIA:
            if criterion.key in scores:
                continue
            try:
                scores[criterion.key] = judge(client, company, criterion, on_call=ctx.count_call, payer=payer)
            except InvalidProviderOutputError:
                if strict:
                    raise
                undecided.append(criterion.key)
    except ActionStopError:
        _keep_partial(ctx, company.id, client, digest, [s for k, s in scores.items() if k not in answered], tier)
        raise
    except ProviderError as error:
        _keep_partial(ctx, company.id, client, digest, [s for k, s in scores.items() if k not in answered], tier)
        get_run_logger().warning(
            "company %d not scored by %s: %s: %s", company.id, client.model, type(error).__name__, error
        )
        if strict:
            return TierResult(None, (), ctx.provider_calls - calls_before, error=error)
        return TierResult(None, ("provider failure",), ctx.provider_calls - calls_before)
    if undecided:
        _keep_partial(ctx, company.id, client, digest, [s for k, s in scores.items() if k not in answered], tier)
        return TierResult(None, tuple(undecided), ctx.provider_calls - calls_before)
    total = _store(ctx, company.id, client, digest, list(scores.values()), tier, complete=True)
    return TierResult(total=total, undecided=(), calls=ctx.provider_calls - calls_before)


def _score_combined(
    ctx: BatchContext, company: Company, digest: str, client: LLMClient, tier: int | None
) -> TierResult:
    """A cheap tier's verdict from one call that asks every criterion (``core.rubric_combined``).

    The call's tokens are spread over the ten rows; criteria the reply leaves out or garbles are undecided
    (the company then goes up a tier); a provider failure leaves everything undecided.
    """
    ctx.count_call()
    try:
        text, used_in, used_out = Payer(ctx.meter, company.id, tier).complete(client, build_combined_prompt(company))
    except ProviderError as error:
        get_run_logger().warning("company %d: %s failed (%s); up a tier", company.id, client.model, error)
        return TierResult(None, ("provider failure",), 1)
    found, undecided = parse_combined(text)
    if undecided:
        return TierResult(None, tuple(undecided), 1)
    share_in, share_out = used_in // len(CRITERIA), used_out // len(CRITERIA)
    scores = [
        CriterionScore(
            criterion=key,
            level=judgement.level,
            reasoning=judgement.reasoning,
            prompt_tokens=share_in + (used_in % len(CRITERIA) if i == 0 else 0),
            completion_tokens=share_out + (used_out % len(CRITERIA) if i == 0 else 0),
            calls=1 if i == 0 else 0,
        )
        for i, (key, judgement) in enumerate(found.items())
    ]
    return TierResult(total=_store(ctx, company.id, client, digest, scores, tier, complete=True), undecided=(), calls=1)


def _keep_partial(
    ctx: BatchContext,
    company_id: int,
    client: LLMClient,
    digest: str,
    scores: list[CriterionScore],
    tier: int | None,
) -> None:
    """Store the criteria just paid for, so a resumed action reuses them instead of asking again."""
    if scores:
        _store(ctx, company_id, client, digest, scores, tier, complete=False)


def _store(
    ctx: BatchContext,
    company_id: int,
    client: LLMClient,
    digest: str,
    scores: list[CriterionScore],
    tier: int | None,
    *,
    complete: bool,
) -> int | None:
    """Write a company's criterion rows (and, when ``complete``, its total); returns the total."""
    build = score_rows if complete else criterion_rows
    rows = build(
        company_id=company_id,
        bulk_action_id=ctx.bulk_action_id,
        provider=client.provider,
        model=client.model,
        input_sha256=digest,
        scores=scores,
        tier=tier,
    )
    with ctx.database.session() as session:
        store_scores(session, rows)
    return int(rows[-1]["score"]) if complete else None
