"""What an LLM reclassify (``reclassify(mode="llm")``) would send, cost and take, known before anything is paid.

LLM reclassify sends one Anthropic Message Batches request per eligible company, in sub-batches of
``SUB_BATCH_SIZE`` (``tasks.message_batches``).  Its estimate screens a sample of the selection as the real run
screens each company, builds each sampled eligible company's real request, and scales to the whole selection:

* **who costs nothing**: a company that is not active (merged, deleted) or whose classification is current
  (``ClassifyInput.outdated``; ``force`` sends it anyway) is skipped; one with nothing to classify from
  (``CompanyText.is_empty``) is refused as invalid input; the others are *eligible*;
* **calls**: one request per eligible company.  Submission takes the selected companies 100 at a time and POSTs
  the eligible ones of each window as one sub-batch, so the sub-batches are the windows with an eligible company;
* **cost** of a request, at the Message Batches price (``PriceBook.llm_cost(..., batch=True)``)::

      input   = prompt bytes x tokens per byte (+ the search results' tokens per request, web search only)
      output  = the average answer of earlier reclassifies asking the same fields (DEFAULT_ANSWER_TOKENS
                without history), never more than max_tokens
      request = llm_cost(input, output, batch=True) + web_search_cost(searches per request)

  where the prompt bytes are the system prompt and user message of the company's ``request_for``, as sent.
  Tokens per byte come from earlier LLM reclassifies of the model: their ledger rows record tokens but no bytes
  (a batch result does not carry its prompt), so each one's prompt is rebuilt from its company's text and its
  action's options.  Without any, the ledger's Messages API calls of the model (``ledger_history``), then
  1 token per 4 bytes.  Searches per request, and the tokens their results add, are learned from earlier web
  search reclassifies (the fee is what the ledger paid above the tokens); without them, 1 search and no tokens;
* **duration** (``expected_seconds``)::

      expected = sub-batches x SUBMIT_SECONDS + MESSAGE_BATCH_TYPICAL_SECONDS + recheck_seconds / 2

  Every sub-batch is POSTed in the first round and they process side by side at the provider; most batches
  end within an hour (Anthropic's documentation), none later than 24 hours (their unfinished requests expire and
  fail for ``retry_errors``).  A deployed run hands over after ``wait_seconds`` and a continuation looks again
  every ``recheck_seconds``, so the end is seen half an interval late on average.

Every figure the estimate could not measure is said in ``assumptions``, next to the result.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from core.classify_prompt import CompanyText
from core.estimate_model import (
    LLM_SECONDS_PER_CALL,
    Estimate,
    LedgerHistory,
    Slots,
    format_duration,
    nothing_to_do,
    sample_note,
    scaled,
    tokens_per_byte,
    units_with_work,
)
from core.pricing import PriceBook, UnpricedModelError, format_usd
from core.reclassify import CLASSIFY_COLUMNS, ClassifyInput
from core.reclassify_llm import PROVIDER, SUB_BATCH_SIZE, LLMOptions, request_for, worst_case_nanousd
from core.schema import BulkAction, Company, CompanyStatus, SpendEntry

ACTION = "reclassify"
#: without history: ``{"sector": "J", "subsector": "62", "business_model": "B2B"}``, about 30 tokens
DEFAULT_ANSWER_TOKENS = 30
#: without history, column mode: one key, ``{"business_model": "B2B"}``
DEFAULT_COLUMN_ANSWER_TOKENS = 12
#: without web search history: the model looks the company up once
DEFAULT_SEARCHES_PER_REQUEST = 1.0
#: "most batches finish in less than 1 hour" (Anthropic's Message Batches documentation)
MESSAGE_BATCH_TYPICAL_SECONDS = 3600.0
#: a batch that has not ended after 24 hours expires
MESSAGE_BATCH_MAX_SECONDS = 24 * 3600.0
#: one POST of up to 100 requests of a few kB (no measured source: a hosted API call)
SUBMIT_SECONDS = LLM_SECONDS_PER_CALL
#: the most recent settled reclassify requests of a model that make its history (bounded reads)
RECENT_REQUESTS = 500
#: a model the ledger has not seen
NO_HISTORY = LedgerHistory()


# --- what the estimate reads ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClassifySample:
    """A sampled company as LLM reclassify's screen sees it: its classification columns, text and status."""

    row: ClassifyInput
    text: CompanyText
    status: CompanyStatus


@dataclass(frozen=True)
class PastRequest:
    """One settled LLM reclassify request of the ledger, with its prompt rebuilt."""

    prompt_bytes: int
    input_tokens: int
    output_tokens: int
    cost_nanousd: int
    model: str
    target_column: str | None
    web_search: bool


def classify_sample(session: Session, ids: Sequence[int]) -> list[ClassifySample]:
    """The sampled companies' classification columns, website and status, in the order of ``ids``."""
    rows = session.execute(
        select(*CLASSIFY_COLUMNS, Company.website, Company.status).where(Company.id.in_(list(ids)))
    ).all()
    found: dict[int, ClassifySample] = {}
    for row in rows:
        columns: dict[str, Any] = {c.key: row[i] for i, c in enumerate(CLASSIFY_COLUMNS)}
        current = ClassifyInput(**columns)
        website, status = row[-2], CompanyStatus(str(row[-1]))
        text = CompanyText(current.name, current.nace_code, current.industry, current.activity_description, website)
        found[current.id] = ClassifySample(current, text, status)
    return [found[cid] for cid in ids if cid in found]


def past_requests(session: Session, model: str, limit: int = RECENT_REQUESTS) -> list[PastRequest]:
    """The most recent settled LLM reclassify requests of ``model`` (or a dated snapshot of it), prompts rebuilt.

    A request whose company is gone, or whose action recorded no options, is left out.  Three bounded reads:
    the ledger rows, their actions' options, their companies' text.
    """
    ledger = session.execute(
        select(
            SpendEntry.bulk_action_id,
            SpendEntry.company_id,
            SpendEntry.model,
            SpendEntry.input_tokens,
            SpendEntry.output_tokens,
            SpendEntry.cost_nanousd,
        )
        .where(
            SpendEntry.action == ACTION,
            SpendEntry.provider == PROVIDER,
            or_(SpendEntry.model == model, SpendEntry.model.startswith(f"{model}-", autoescape=True)),
            SpendEntry.bulk_action_id.is_not(None),
            SpendEntry.company_id.is_not(None),
            SpendEntry.unpriced.is_(False),
        )
        .order_by(SpendEntry.id.desc())
        .limit(limit)
    ).all()
    snapshot = re.compile(rf"^{re.escape(model)}(-\d{{8}})?$")  # claude-haiku-4-5 answers as claude-haiku-4-5-2025...
    ledger = [row for row in ledger if snapshot.match(row.model)]
    if not ledger:
        return []
    actions = {row.bulk_action_id for row in ledger}
    options: dict[int, dict[str, Any]] = {
        action_id: dict((parameters or {}).get("options") or {})
        for action_id, parameters in session.execute(
            select(BulkAction.id, BulkAction.parameters).where(BulkAction.id.in_(actions))
        ).all()
    }
    texts = {
        row.id: CompanyText(row.name, row.nace_code, row.industry, row.activity_description, row.website)
        for row in session.execute(
            select(
                Company.id,
                Company.name,
                Company.nace_code,
                Company.industry,
                Company.activity_description,
                Company.website,
            ).where(Company.id.in_({row.company_id for row in ledger}))
        ).all()
    }
    past: list[PastRequest] = []
    for row in ledger:
        text, asked = texts.get(row.company_id), options.get(row.bulk_action_id)
        if text is None or not asked:
            continue
        sent = LLMOptions.of(asked, row.model)
        request = request_for(row.bulk_action_id, row.company_id, text, sent)
        past.append(
            PastRequest(
                prompt_bytes=prompt_bytes(request),
                input_tokens=row.input_tokens,
                output_tokens=row.output_tokens,
                cost_nanousd=row.cost_nanousd,
                model=row.model,
                target_column=sent.target_column,
                web_search=sent.web_search,
            )
        )
    return past


def prompt_bytes(request: dict[str, Any]) -> int:
    """The UTF-8 bytes of a batch request's prompt: its system prompt and its messages (the tool adds none)."""
    params = request["params"]
    return sum(len(t.encode("utf-8")) for t in [params["system"], *(m["content"] for m in params["messages"])])


# --- the estimate --------------------------------------------------------------------------------------------


def screen(company: ClassifySample, *, force: bool) -> str:
    """What the real run does with a company before any request: ``inactive``, ``current``, ``empty`` (refused
    as invalid input) or ``eligible``; in ``tasks.message_batches``' order."""
    if company.status is not CompanyStatus.ACTIVE:
        return "inactive"
    if not force and not company.row.outdated():
        return "current"
    if company.text.is_empty():
        return "empty"
    return "eligible"


def estimate_reclassify_llm(
    companies: int,
    sample: Sequence[ClassifySample],
    options: LLMOptions,
    prices: PriceBook,
    slots: Slots,
    *,
    force: bool = False,
    history: Sequence[PastRequest] = (),
    messages_history: LedgerHistory = NO_HISTORY,
    recheck_seconds: float = 600.0,
) -> Estimate:
    """``reclassify(mode="llm")``: one Message Batches request per eligible company (the module docstring)."""
    if not sample or companies <= 0:
        return nothing_to_do(ACTION, companies)
    notes = [sample_note(len(sample), companies)]
    verdicts = [screen(c, force=force) for c in sample]
    inactive, current = verdicts.count("inactive"), verdicts.count("current")
    skipped = scaled(inactive + current, len(sample), companies)
    invalid = scaled(verdicts.count("empty"), len(sample), companies)
    flags = [v == "eligible" for v in verdicts]
    calls = max(0, companies - skipped - invalid) if any(flags) else 0
    if inactive:
        notes.append("merged and deleted companies are skipped")
    if force:
        notes.append("force: companies whose classification is current are classified again")
    elif current:
        notes.append(
            "companies whose classification is current (same taxonomy version and text) are skipped: "
            "force=true sends them too"
        )
    if verdicts.count("empty"):
        notes.append("companies with no name, NACE code, industry or activity are refused (nothing to classify)")
    windows = units_with_work(flags, SUB_BATCH_SIZE, len(sample) >= companies) * companies / len(sample)
    sub_batches = min(math.ceil(windows - 1e-9), calls)
    notes.append(
        f"one Message Batches request per eligible company ({options.model}, max_tokens {options.max_tokens}), "
        f"in {sub_batches:,} sub-batch{'' if sub_batches == 1 else 'es'} of at most {SUB_BATCH_SIZE} (one POST each)"
    )
    requests = [request_for(0, c.row.id, c.text, options) for c, ok in zip(sample, flags, strict=True) if ok]
    cost = _cost(requests, calls, options, prices, history, messages_history, notes) if requests else 0
    seconds = 0.0
    if calls > 0:
        seconds = sub_batches * SUBMIT_SECONDS + MESSAGE_BATCH_TYPICAL_SECONDS + recheck_seconds / 2
        notes += [
            f"duration: about {format_duration(MESSAGE_BATCH_TYPICAL_SECONDS)} of batch processing (assumed: "
            "Anthropic says most batches finish within an hour; they process side by side) plus "
            f"{SUBMIT_SECONDS:g} s per sub-batch POST and half a recheck interval ({recheck_seconds:g} s) before "
            "a deployed run's continuation sees the end",
            f"at most {MESSAGE_BATCH_MAX_SECONDS / 3600:g} hours of batch processing: requests still unprocessed "
            "then expire and fail, for retry_errors",
        ]
    if slots.limit is None:
        notes.append(f"no tag:{slots.tag} concurrency limit: the real run would stop before starting")
    return Estimate(
        action=ACTION,
        companies=companies,
        skipped=skipped,
        invalid_input=invalid,
        provider_calls=calls,
        estimated_cost_nanousd=cost,
        expected_seconds=seconds,
        sample_size=len(sample),
        assumptions=tuple(notes),
    )


def _cost(
    requests: Sequence[dict[str, Any]],
    calls: int,
    options: LLMOptions,
    prices: PriceBook,
    history: Sequence[PastRequest],
    messages_history: LedgerHistory,
    notes: list[str],
) -> int:
    """What ``calls`` requests like the sampled ``requests`` cost at the batch price, searches included."""
    per_byte = _tokens_per_byte(history, messages_history, options.model, notes)
    output = _answer_tokens(history, options, notes)
    mean_bytes = sum(prompt_bytes(r) for r in requests) / len(requests)
    try:
        searches, search_tokens = _searches(history, per_byte, options, prices, notes)
        input_tokens = round(mean_bytes * per_byte + search_tokens)
        per_request = prices.llm_cost(PROVIDER, options.model, input_tokens, output, batch=True)
        fees = prices.web_search_cost(PROVIDER, round(searches * calls))
        worst = worst_case_nanousd(list(requests), options, prices) / len(requests)
    except UnpricedModelError:
        notes.append(f"{PROVIDER} model {options.model} has no price: the real run would be refused")
        return 0
    notes.append(
        f"an average request is {input_tokens:,} input and {output:,} output tokens, {format_usd(per_request)} at "
        "the Message Batches price (half the Messages price)"
    )
    if options.web_search:
        notes.append(f"web search: {round(searches * calls):,} searches, {format_usd(fees)} (not discounted)")
    notes.append(
        f"each sub-batch reserves up to {format_usd(round(worst * min(calls, SUB_BATCH_SIZE)))} against the "
        "budget before its POST (every prompt byte a token, every answer max_tokens long); the ledger settles "
        "what the provider reports"
    )
    return per_request * calls + fees


def _tokens_per_byte(
    history: Sequence[PastRequest], messages_history: LedgerHistory, model: str, notes: list[str]
) -> float:
    """Input tokens per prompt byte: earlier reclassifies without web search, else Messages calls, else 1 in 4."""
    plain = [p for p in history if not p.web_search]
    tokens, size = sum(p.input_tokens for p in plain), sum(p.prompt_bytes for p in plain)
    if tokens > 0 and size > 0:
        notes.append(
            f"{PROVIDER} {model}: {tokens / size:.3f} input tokens per byte (ledger: {len(plain):,} earlier "
            "reclassify requests, their prompts rebuilt from the companies' current text)"
        )
        return tokens / size
    per_byte, note = tokens_per_byte(messages_history, f"{PROVIDER} {model}")
    notes.append(note)
    return per_byte


def _answer_tokens(history: Sequence[PastRequest], options: LLMOptions, notes: list[str]) -> int:
    """Output tokens of an answer asking the same fields: the ledger's average, else the default; max_tokens caps."""
    same = [p for p in history if p.target_column == options.target_column]
    asked = f"column {options.target_column}" if options.target_column else "sector, subsector and business model"
    if same:
        average = sum(p.output_tokens for p in same) / len(same)
        notes.append(f"{average:.1f} output tokens per answer ({asked}; ledger average of {len(same):,})")
    else:
        average = DEFAULT_COLUMN_ANSWER_TOKENS if options.target_column else DEFAULT_ANSWER_TOKENS
        notes.append(f"{average} output tokens per answer ({asked}: a short JSON object; no ledger history)")
    if average > options.max_tokens:
        notes.append(f"answers are cut at max_tokens={options.max_tokens}")
    return round(min(average, options.max_tokens))


def _searches(
    history: Sequence[PastRequest], per_byte: float, options: LLMOptions, prices: PriceBook, notes: list[str]
) -> tuple[float, float]:
    """Searches per request and the input tokens their results add, from earlier web search reclassifies."""
    if not options.web_search:
        return 0.0, 0.0
    fee = prices.web_search_cost(PROVIDER, 1)
    searched = [p for p in history if p.web_search]
    if not searched or fee <= 0:
        notes.append(
            f"web search: {DEFAULT_SEARCHES_PER_REQUEST:g} search per request (assumed: no earlier web search "
            "reclassify); the pages it reads are billed as input tokens too and are not counted here"
        )
        return min(DEFAULT_SEARCHES_PER_REQUEST, options.web_search_max_uses), 0.0
    paid = sum(
        p.cost_nanousd - prices.llm_cost(PROVIDER, p.model, p.input_tokens, p.output_tokens, batch=True)
        for p in searched
    )
    searches = min(max(0.0, paid / fee / len(searched)), float(options.web_search_max_uses))
    extra = max(0.0, sum(p.input_tokens - p.prompt_bytes * per_byte for p in searched) / len(searched))
    notes.append(
        f"web search: {searches:.2f} searches per request and {extra:,.0f} input tokens of search results "
        f"(ledger: {len(searched):,} earlier web search requests)"
    )
    return searches, extra
