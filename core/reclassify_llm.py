"""LLM reclassify, one company at a time: its batch request, and what its staged result means.

A request's ``custom_id`` is derived from the bulk action and the company (``a<action>-c<company>``), so a result
line names its company without any lookup table and a line of another action (or of a stranger's batch) is
recognised and ignored.  The worst case a request can cost (reserved before its batch is submitted) and the
real cost of its result (settled when it is staged) are both priced here at the batch discount.

Interpreting a result is pure: succeeded and valid → the fields to write; succeeded but invalid for the
taxonomy → ``needs_review`` with the reason (the product's rule); errored, canceled, expired or missing → a
failed outcome that ``retry_errors`` picks up (retryable unless the request itself was refused as invalid).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from core.classify_prompt import CompanyText, InvalidAnswer, asked_fields, parse_answer, system_prompt, user_message
from core.classify_rules import Classification
from core.pricing import PriceBook, worst_case_input_tokens
from core.reclassify import ClassifyInput, wanted_values
from core.schema import OutcomeStatus
from core.spend import LedgerEntry
from core.store import CompanyResult

PROVIDER = "anthropic"
WEB_SEARCH_TOOL = "web_search_20250305"
SUB_BATCH_SIZE = 100
_CUSTOM_ID = re.compile(r"^a(\d+)-c(\d+)$")
#: error types of an errored request that another try will not fix
_PERMANENT_ERRORS = frozenset({"invalid_request_error", "authentication_error", "permission_error", "not_found_error"})


@dataclass(frozen=True)
class LLMOptions:
    """What every request of one reclassify carries."""

    model: str
    max_tokens: int
    web_search: bool = False
    web_search_max_uses: int = 3
    target_column: str | None = None

    @classmethod
    def of(cls, options: dict[str, Any], default_model: str) -> LLMOptions:
        return cls(
            model=str(options.get("model") or default_model),
            max_tokens=int(options.get("max_tokens") or 200),
            web_search=bool(options.get("web_search", False)),
            web_search_max_uses=int(options.get("web_search_max_uses") or 3),
            target_column=options.get("target_column"),
        )


def custom_id(bulk_action_id: int, company_id: int) -> str:
    return f"a{bulk_action_id}-c{company_id}"


def company_of(custom_id_: str, bulk_action_id: int) -> int | None:
    """The company a result line is for, or None when the line is not one of this action's requests."""
    match = _CUSTOM_ID.match(custom_id_)
    if match is None or int(match.group(1)) != bulk_action_id:
        return None
    return int(match.group(2))


def request_for(bulk_action_id: int, company_id: int, text: CompanyText, options: LLMOptions) -> dict[str, Any]:
    """One Message Batches request: the company's text under the taxonomy prompt (full or column mode)."""
    params: dict[str, Any] = {
        "model": options.model,
        "max_tokens": options.max_tokens,
        "system": system_prompt(options.target_column),
        "messages": [{"role": "user", "content": user_message(text)}],
    }
    if options.web_search:
        params["tools"] = [{"type": WEB_SEARCH_TOOL, "name": "web_search", "max_uses": options.web_search_max_uses}]
    return {"custom_id": custom_id(bulk_action_id, company_id), "params": params}


def worst_case_nanousd(requests: list[dict[str, Any]], options: LLMOptions, prices: PriceBook) -> int:
    """What the requests can cost at most: every input byte a token, every answer ``max_tokens`` long.

    Web search results enter the context as input tokens the prompt does not show; each search is reserved with
    a generous 10,000 extra input tokens on top of the search fee.
    """
    total = 0
    for request in requests:
        params = request["params"]
        texts = [params["system"], *(m["content"] for m in params["messages"])]
        tokens_in = worst_case_input_tokens(texts)
        searches = options.web_search_max_uses if options.web_search else 0
        tokens_in += 10_000 * searches
        total += prices.llm_cost(PROVIDER, options.model, tokens_in, options.max_tokens, batch=True)
        total += prices.web_search_cost(PROVIDER, searches)
    return total


def ledger_entry(company_id: int, payload: dict[str, Any], prices: PriceBook, input_bytes: int = 0) -> LedgerEntry:
    """The settled cost of one succeeded request, from the usage its result reports (batch price)."""
    model = str(payload.get("model") or "")
    tokens_in, tokens_out = int(payload.get("input_tokens", 0)), int(payload.get("output_tokens", 0))
    cost = prices.llm_cost(PROVIDER, model, tokens_in, tokens_out, batch=True)
    cost += prices.web_search_cost(PROVIDER, int(payload.get("web_search_requests", 0)))
    return LedgerEntry(
        company_id=company_id,
        provider=PROVIDER,
        model=model,
        cost_nanousd=cost,
        input_tokens=tokens_in,
        output_tokens=tokens_out,
        input_bytes=input_bytes,
    )


@dataclass(frozen=True)
class Interpretation:
    """What one staged result does: the outcome, and the fields to write (empty: write nothing)."""

    result: CompanyResult
    values: dict[str, Any]


def interpret(row: ClassifyInput, result_type: str, payload: dict[str, Any], options: LLMOptions) -> Interpretation:
    """Turn one staged result into an outcome and the company's new fields."""
    cid = row.id
    if result_type == "succeeded":
        model = str(payload.get("model") or options.model)
        try:
            answer = parse_answer(str(payload.get("text", "")), asked_fields(options.target_column))
        except InvalidAnswer as invalid:
            reason = str(invalid)
            detail = f"needs review: {reason}"
            return Interpretation(
                CompanyResult(cid, OutcomeStatus.SKIPPED, detail, 1),
                {"needs_review": True, "review_reason": reason},
            )
        found = Classification(
            sector=answer.get("sector", row.sector),
            subsector=answer.get("subsector", row.subsector),
            business_model=answer.get("business_model", row.business_model),
            confidence="text",  # the model read the text (the rules' "code" means a given NACE code)
            reasons=(),
        )
        values = wanted_values(row, found, mode="llm", model=model, target_column=options.target_column)
        shown = ", ".join(f"{field} {answer[field]}" for field in asked_fields(options.target_column))
        return Interpretation(CompanyResult(cid, OutcomeStatus.SUCCEEDED, f"set {shown} ({model})", 1), values)
    if result_type == "errored":
        kind = str(payload.get("error_type") or "error")
        message = str(payload.get("error_message") or "")
        detail = f"the batch request errored: {kind}" + (f": {message}" if message else "")
        retryable = kind not in _PERMANENT_ERRORS
        return Interpretation(CompanyResult(cid, OutcomeStatus.FAILED, detail, 1, "MessageBatchErrored", retryable), {})
    reasons = {
        "canceled": ("the batch was canceled before this request ran", "MessageBatchCanceled"),
        "expired": ("the batch expired (24 hours) before this request ran", "MessageBatchExpired"),
        "missing": ("the ended batch returned no result for this request", "MessageBatchResultMissing"),
    }
    detail, error_class = reasons.get(result_type, (f"unknown result type {result_type!r}", "MessageBatchResult"))
    return Interpretation(CompanyResult(cid, OutcomeStatus.FAILED, detail, 1, error_class, True), {})
