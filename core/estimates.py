"""What a bulk action would cost and how long it would take, known before anything is paid (``dry_run``).

An operator about to score 50,000 companies on GROQ wants three numbers first: how many provider calls, how many
dollars, how many hours.  Every number here comes from what the action would really do, scaled from a sample of
the selected companies (``core.estimate_inputs`` reads it, spread over the whole selection):

* **who costs nothing**: companies that fail the input checks (``core.company_checks``, as the batch checks
  them) and companies whose stored result is current (scores answering the same prompts, a vector of the same
  text and model) are counted from the sample and scaled to the selection;
* **calls**: ``score_llm_adoption`` makes 10 per company and tier it reaches (1 at a cheaper tier that asks all
  criteria at once) (the first tier for every company,
  then ``escalation share`` of those for the next tier: the share earlier tiered scorings escalated, or
  ``DEFAULT_ESCALATION_SHARE``); ``enrich_companies`` one Parallel run per company with a usable website;
  ``generate_embeddings`` one request per call unit of 10 companies that has something to embed (about
  ``ceil(n / 10)``); local actions none;
* **cost**: an LLM call costs ``PriceBook.llm_cost(provider, model, input, output)`` of the average call,
  where ``input = prompt bytes x tokens per byte`` (what this provider and model showed in the spend ledger:
  sum of input tokens / sum of input bytes; 1 token per 4 bytes without history) and ``output`` is the
  ledger's average output tokens per call (``DEFAULT_OUTPUT_TOKENS`` without history); a Parallel run costs
  its processor's price (``PriceBook.run_cost``); an embedding request its tokens (the same bytes-to-tokens
  rule); local providers nothing;
* **duration** (``expected_seconds``)::

      units      = ceil(companies / call_size)              call units of the catalog (3 to score, 5, 10)
      batches    = ceil(units / calls_per_batch)            calls_per_batch as the engine balances it
      in_flight  = min(tag limit, batches)                  the engine's tag:<concurrency_tag> slots
      working    = ceil(batches / in_flight) x min(calls_per_batch, units) x unit_seconds
      paced      = floor((calls - 1) / R) x W + latency     per provider limited to R requests per W seconds
      expected   = max(working, every paced) + batches x ENGINE_SECONDS_PER_BATCH

  where ``unit_seconds`` is what one call unit takes in its batch: for scoring its 3 companies' calls one after
  another (``calls per company x latency``, ~1 s per LLM call); for enrichment one run (its 5 runs go side by
  side; typical run times per processor from the provider's documentation); for embeddings one request.

Every figure the estimate could not measure is said in ``assumptions``, in words, next to the result.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from core.catalog import get_action
from core.estimate_model import (
    DEFAULT_ESCALATION_SHARE,
    DEFAULT_OUTPUT_TOKENS,
    EMBEDDING_API_SECONDS_PER_CALL,
    PARALLEL_CREATIONS_PER_MINUTE,
    PARALLEL_RUN_SECONDS,
    Estimate,
    LedgerHistory,
    LLMTier,
    Pace,
    SampleCompany,
    Slots,
    TierHistory,
    expected_seconds,
    format_duration,
    invalid_flags,
    nothing_to_do,
    sample_note,
    scaled,
    tokens_per_byte,
    units_with_work,
)
from core.pricing import FREE_PROVIDERS, PriceBook, UnpricedModelError, format_usd
from core.rubric import CRITERIA, CompanyLike, build_prompt, input_sha256
from core.rubric_combined import build_combined_prompt
from core.text import embedding_text, text_sha256

#: a scoring with no earlier tiered scorings to learn its escalation share from
NO_TIER_HISTORY = TierHistory()


# --- per action --------------------------------------------------------------------------------------------


def estimate_scoring(
    companies: int,
    sample: Sequence[SampleCompany],
    tiers: Sequence[LLMTier],
    prices: PriceBook,
    slots: Slots,
    *,
    rescore: bool = False,
    tier_history: TierHistory = NO_TIER_HISTORY,
    allow_unpriced: bool = False,
) -> Estimate:
    """``score_llm_adoption``: 10 calls per company and tier reached, priced per average call of each tier."""
    action = "score_llm_adoption"
    if not sample or companies <= 0:
        return nothing_to_do(action, companies)
    notes = [sample_note(len(sample), companies)]
    invalid = invalid_flags(sample, action)
    valid = [c for c, bad in zip(sample, invalid, strict=True) if not bad]
    shares = _escalation_shares(len(tiers), tier_history, notes)
    digests = {c.id: input_sha256(c) for c in valid}
    prompt_bytes = {c.id: _prompt_bytes(c) for c in valid}
    # reach[t]: the chance a company gets to tier t at all; current[t][c]: its stored score there is current
    reach = [math.prod(shares[:t]) for t in range(len(tiers))]
    current = [{c.id: not rescore and tier.current.get(c.id) == digests[c.id] for c in valid} for tier in tiers]
    skipped = sum(_skip_chance([current[t][c.id] for t in range(len(tiers))], shares) for c in valid)
    total_cost = 0.0
    total_calls = 0.0
    seconds_per_company = 0.0
    paced: list[float] = []
    for t, tier in enumerate(tiers):
        paying = [c for c in valid if not current[t][c.id]]
        per_company = 1 if tier.combined else len(CRITERIA)
        calls = scaled_float(reach[t] * per_company * len(paying), len(sample), companies)
        if not paying or calls <= 0:
            continue
        if tier.provider in FREE_PROVIDERS:
            notes.append(f"{tier.reference} runs on this machine: $0")
        else:
            sizes = [_combined_prompt_bytes(c) if tier.combined else prompt_bytes[c.id] for c in paying]
            mean_bytes = sum(sizes) / (len(paying) * per_company)
            total_cost += _llm_call_cost(prices, tier, mean_bytes, allow_unpriced, notes) * calls
        total_calls += calls
        seconds_per_company += calls / companies * tier.seconds_per_call
        if tier.pace is not None:
            paced.append(tier.pace.seconds_for(calls, tier.seconds_per_call))
            notes.append(f"{tier.reference} is paced to {tier.pace.describe()}")
        notes.append(f"{tier.reference}: {tier.seconds_per_call:g} s per call (typical latency)")
    notes.append("every answer parses on the first call (an unreadable one costs up to two more calls)")
    call_size = get_action(action).call_size
    seconds = expected_seconds(companies, call_size, slots, call_size * seconds_per_company, paced)
    return Estimate(
        action=action,
        companies=companies,
        skipped=scaled(skipped, len(sample), companies),
        invalid_input=scaled(sum(invalid), len(sample), companies),
        provider_calls=round(total_calls),
        estimated_cost_nanousd=round(total_cost),
        expected_seconds=seconds,
        sample_size=len(sample),
        assumptions=tuple(notes + _slots_notes(slots)),
    )


def scaled_float(count: float, sample_size: int, companies: int) -> float:
    return count * companies / sample_size if sample_size else 0.0


def _prompt_bytes(company: CompanyLike) -> int:
    """The UTF-8 bytes of a company's ten prompts, as the meter records them (``input_bytes``)."""
    return sum(len(m["content"].encode("utf-8")) for c in CRITERIA for m in build_prompt(company, c))


def _combined_prompt_bytes(company: CompanyLike) -> int:
    """The UTF-8 bytes of a company's one prompt asking every criterion (a cheaper tier's call)."""
    return sum(len(m["content"].encode("utf-8")) for m in build_combined_prompt(company))


def _escalation_shares(tiers: int, history: TierHistory, notes: list[str]) -> list[float]:
    shares: list[float] = []
    for t in range(tiers - 1):
        known = history.share_up(t)
        if known is None:
            shares.append(DEFAULT_ESCALATION_SHARE)
            notes.append(
                f"{DEFAULT_ESCALATION_SHARE:.0%} of the companies at tier {t + 1} go up to tier {t + 2} "
                "(assumed: no earlier tiered scoring with as many tiers)"
            )
        else:
            shares.append(known)
            notes.append(
                f"{known:.0%} of the companies at tier {t + 1} go up to tier {t + 2} "
                f"(earlier tiered scorings: {history.companies:,} companies)"
            )
    return shares


def _skip_chance(current: Sequence[bool], shares: Sequence[float]) -> float:
    """The chance a company pays nothing: current at its first tier and at every tier it goes up to."""
    if not current[0]:
        return 0.0
    if len(current) == 1:
        return 1.0
    return (1 - shares[0]) + shares[0] * _skip_chance(current[1:], shares[1:])


def _llm_call_cost(
    prices: PriceBook, tier: LLMTier, prompt_bytes: float, allow_unpriced: bool, notes: list[str]
) -> int:
    """The price of a call of ``prompt_bytes`` (the tier's average), its tokens taken from the ledger's ratios."""
    per_byte, note = tokens_per_byte(tier.history, f"{tier.reference} ({tier.provider} {tier.model})")
    notes.append(note)
    output = tier.history.output_tokens_per_call
    if output is None:
        output = DEFAULT_OUTPUT_TOKENS
        notes.append(f"{tier.reference}: {DEFAULT_OUTPUT_TOKENS} output tokens per call (no ledger history)")
    else:
        notes.append(f"{tier.reference}: {output:.1f} output tokens per call (ledger average)")
    input_tokens, output_tokens = round(prompt_bytes * per_byte), round(output)
    try:
        cost = prices.llm_cost(tier.provider, tier.model, input_tokens, output_tokens)
    except UnpricedModelError:
        verdict = "counted at $0 (allow_unpriced)" if allow_unpriced else "the real run would be refused"
        notes.append(f"{tier.provider} model {tier.model} has no price: {verdict}")
        return 0
    notes.append(
        f"{tier.reference}: an average call is {input_tokens:,} input and {output_tokens:,} output tokens, "
        f"{format_usd(cost)}"
    )
    return cost


def _slots_notes(slots: Slots) -> list[str]:
    if slots.limit is None:
        return [
            f"no tag:{slots.tag} concurrency limit: the real run would stop before starting "
            "(estimated with 1 batch in flight)"
        ]
    return [f"tag:{slots.tag} allows {slots.limit} batches in flight"]


def estimate_enrichment(
    companies: int,
    sample: Sequence[SampleCompany],
    processor: str,
    prices: PriceBook,
    slots: Slots,
    *,
    max_active_runs: int | None = None,
) -> Estimate:
    """``enrich_companies``: one Parallel run per company with a usable website, at the processor's price."""
    action = "enrich_companies"
    if not sample or companies <= 0:
        return nothing_to_do(action, companies)
    notes = [sample_note(len(sample), companies)]
    invalid = invalid_flags(sample, action)
    runs = scaled(len(sample) - sum(invalid), len(sample), companies)
    try:
        per_run = prices.run_cost(processor)
        notes.append(f"Parallel {processor} processor: {format_usd(per_run)} per completed run (failed runs are free)")
    except UnpricedModelError:
        per_run = 0
        notes.append(f"Parallel processor {processor!r} has no price: the real run would be refused")
    run_seconds = PARALLEL_RUN_SECONDS.get(processor, max(PARALLEL_RUN_SECONDS.values()))
    notes.append(f"a {processor} run takes about {format_duration(run_seconds)} (typical, providers.md)")
    call_size = get_action(action).call_size
    units = math.ceil(companies / call_size)
    with_work = units_with_work([not bad for bad in invalid], call_size, len(sample) >= companies)
    busy = scaled_float(with_work, len(sample), companies) / units if units else 0.0
    creations = Pace(PARALLEL_CREATIONS_PER_MINUTE, 60.0)
    paced = [creations.seconds_for(runs, run_seconds)]
    notes.append(f"run creation is limited to {creations.describe()}")
    if max_active_runs is not None:
        paced.append(math.ceil(runs / max_active_runs) * run_seconds)
        notes.append(f"at most {max_active_runs} runs active per process (max_active_runs)")
    return Estimate(
        action=action,
        companies=companies,
        skipped=0,
        invalid_input=companies - runs,
        provider_calls=runs,
        estimated_cost_nanousd=runs * per_run,
        expected_seconds=expected_seconds(companies, call_size, slots, busy * run_seconds, paced),
        sample_size=len(sample),
        assumptions=tuple(notes + _slots_notes(slots)),
    )


@dataclass(frozen=True)
class EmbeddingModel:
    """An embedding block as the estimate needs it: who bills (``provider``), for what model, and how fast."""

    reference: str
    provider: str  # the price book's name: local-minilm, workers-ai, openai
    model: str
    model_id: str  # the vector space stored with each vector (current vectors are compared within it)
    history: LedgerHistory = LedgerHistory()
    seconds_per_call: float = EMBEDDING_API_SECONDS_PER_CALL
    pace: Pace | None = None


def estimate_embeddings(
    companies: int,
    sample: Sequence[SampleCompany],
    current: Mapping[int, str | None],
    model: EmbeddingModel,
    prices: PriceBook,
    slots: Slots,
) -> Estimate:
    """``generate_embeddings``: a request per 10 companies with a changed text; billed by its tokens.

    ``current`` maps a sampled company to the text hash of its vector of ``model.model_id`` (None: no vector).
    """
    action = "generate_embeddings"
    if not sample or companies <= 0:
        return nothing_to_do(action, companies)
    notes = [sample_note(len(sample), companies)]
    invalid = invalid_flags(sample, action)
    valid = [c for c, bad in zip(sample, invalid, strict=True) if not bad]
    texts = {c.id: embedding_text(c) for c in valid}
    todo = [current.get(c.id) != text_sha256(texts[c.id]) for c in valid]
    call_size = get_action(action).call_size
    units = units_with_work(todo, call_size, len(sample) >= companies)
    calls = scaled_float(units, len(sample), companies)
    embedded = [texts[c.id] for c, needed in zip(valid, todo, strict=True) if needed]
    cost = 0
    if embedded and calls > 0:
        texts_per_call = scaled_float(len(embedded), len(sample), companies) / calls
        mean_bytes = sum(len(t.encode("utf-8")) for t in embedded) / len(embedded)
        if model.provider in FREE_PROVIDERS:
            notes.append(f"{model.reference} runs on this machine: $0")
            per_call = 0
        else:
            per_byte, note = tokens_per_byte(model.history, f"{model.reference} ({model.model})")
            notes.append(note)
            per_call = _embedding_call_cost(prices, model, round(texts_per_call * mean_bytes * per_byte), notes)
        cost = round(per_call * calls)
    notes.append(f"{model.reference}: {model.seconds_per_call:g} s per request of {call_size} texts")
    paced = [] if model.pace is None else [model.pace.seconds_for(calls, model.seconds_per_call)]
    if model.pace is not None:
        notes.append(f"{model.reference} allows {model.pace.describe()}")
    units_total = math.ceil(companies / call_size)
    busy = calls / units_total if units_total else 0.0
    return Estimate(
        action=action,
        companies=companies,
        skipped=scaled(len(valid) - sum(todo), len(sample), companies),
        invalid_input=scaled(sum(invalid), len(sample), companies),
        provider_calls=round(calls),
        estimated_cost_nanousd=cost,
        expected_seconds=expected_seconds(companies, call_size, slots, busy * model.seconds_per_call, paced),
        sample_size=len(sample),
        assumptions=tuple(notes + _slots_notes(slots)),
    )


def _embedding_call_cost(prices: PriceBook, model: EmbeddingModel, tokens: int, notes: list[str]) -> int:
    try:
        cost = prices.embedding_cost(model.provider, model.model, tokens)
    except UnpricedModelError:
        notes.append(f"{model.provider} model {model.model} has no price: the real run would be refused")
        return 0
    notes.append(f"{model.reference}: an average request is {tokens:,} tokens, {format_usd(cost)}")
    return cost


def estimate_local(action: str, companies: int, slots: Slots) -> Estimate:
    """An action that only works on the company database (``update_status``): no provider, no cost."""
    call_size = get_action(action).call_size
    return Estimate(
        action=action,
        companies=companies,
        skipped=0,
        invalid_input=0,
        provider_calls=0,
        estimated_cost_nanousd=0,
        expected_seconds=expected_seconds(companies, call_size, slots, 0.0),
        sample_size=0,
        assumptions=(
            "no provider is called: only the company database is written",
            *_slots_notes(slots),
        ),
    )
