"""The ``score_llm_adoption`` batch handler: ten criteria per company, one call each, sequential per company.

Each company is handled on its own inside the batch: a company whose provider calls fail (after the client's
retries) or whose answers never parse (after two more calls) is returned as a failed ``CompanyResult`` while
its batch-mates go on.  Raising instead would make ``run_isolated`` rerun the whole batch company by company
and pay again for the companies that had already been scored.

A company's eleven scores are written in one transaction once all ten criteria have answered, so a crash
leaves a company fully scored or not at all; a new bulk action skips companies whose stored scores by the same
provider and model answer the same prompts (``input_sha256``), unless ``rescore`` is set.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import cast

from prefect import get_run_logger

from blocks.llm import LLMBlock
from blocks.loading import load_provider_block
from core.errors import InvalidProviderOutputError, ProviderError
from core.rubric import CRITERIA, CompanyLike, Criterion, build_prompt, input_sha256, parse_judgement, repair_prompt
from core.schema import OutcomeStatus
from core.scores import CriterionScore, current_input_hashes, score_rows, store_scores
from core.store import CompanyResult, load_companies
from providers.llm import LLMClient
from tasks.batch import BatchContext, failure, register_handler

#: calls per criterion when the answer does not parse: the first and two more
PARSE_ATTEMPTS = 3


def load_llm_block(reference: str) -> LLMBlock:
    return cast(LLMBlock, load_provider_block(reference))


def judge(
    client: LLMClient,
    company: CompanyLike,
    criterion: Criterion,
    *,
    on_call: Callable[[], None] = lambda: None,
    attempts: int = PARSE_ATTEMPTS,
) -> CriterionScore:
    """One criterion's level; a reply that does not parse is answered with a request to fix the format.

    Raises ``InvalidProviderOutputError`` (with ``attempts`` set) when ``attempts`` calls gave nothing usable,
    and lets the client's ``ProviderError`` through (it has been retried already).
    """
    prompt = build_prompt(company, criterion)
    messages = prompt
    prompt_tokens = completion_tokens = 0
    last_error: InvalidProviderOutputError | None = None
    for attempt in range(1, attempts + 1):
        on_call()
        completion = client.complete(messages)
        prompt_tokens += completion.prompt_tokens
        completion_tokens += completion.completion_tokens
        try:
            judgement = parse_judgement(completion.text)
        except InvalidProviderOutputError as error:
            last_error = error
            messages = repair_prompt(prompt, completion.text)
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


@register_handler("score_llm_adoption")
def score_batch(ctx: BatchContext, company_ids: Sequence[int]) -> list[CompanyResult]:
    logger = get_run_logger()
    client = load_llm_block(ctx.provider).get_client()
    rescore = bool(ctx.options.get("rescore", False))
    with ctx.database.read_session() as session:
        companies = load_companies(session, company_ids)
        current = current_input_hashes(session, company_ids, client.provider, client.model)
    found = {c.id for c in companies}
    results = [
        CompanyResult(cid, OutcomeStatus.SKIPPED, detail="company no longer exists", attempts=0)
        for cid in company_ids
        if cid not in found
    ]
    for company in companies:
        digest = input_sha256(company)
        if not rescore and current.get(company.id) == digest:
            results.append(
                CompanyResult(company.id, OutcomeStatus.SKIPPED, detail="scores are current for this model", attempts=0)
            )
            continue
        try:
            scores = [judge(client, company, criterion, on_call=ctx.count_call) for criterion in CRITERIA]
        except ProviderError as error:
            logger.warning("company %d not scored: %s: %s", company.id, type(error).__name__, error)
            results.append(failure(company.id, error, error.attempts))
            continue
        rows = score_rows(
            company_id=company.id,
            bulk_action_id=ctx.bulk_action_id,
            provider=client.provider,
            model=client.model,
            input_sha256=digest,
            scores=scores,
        )
        with ctx.database.session() as session:
            store_scores(session, rows)
        calls = sum(s.calls for s in scores)
        detail = f"total {rows[-1]['score']}/50 by {client.provider} {client.model} in {calls} calls"
        results.append(CompanyResult(company.id, OutcomeStatus.SUCCEEDED, detail=detail))
    return results
