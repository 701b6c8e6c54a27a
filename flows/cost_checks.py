"""What one call of a provider block costs at worst, known before a bulk action starts.

Used to refuse, before anything is written or paid: a paid model without a price (unless the caller allows
unpriced calls), and a budget smaller than a single call (it could never make one).  The floor is the worst
case of the smallest call the action makes: a rubric prompt for a company with nothing but a name (its bytes
as tokens, plus ``max_tokens``), one Parallel run, one text to embed at the model's token limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from blocks.embeddings import OpenAICompatibleEmbeddings, WorkersAIEmbeddings
from blocks.enrichment import ParallelEnrichment
from blocks.llm import AnthropicLLM, GroqLLM
from blocks.loading import load_provider_block
from core.errors import InputError
from core.pricing import PriceBook, UnpricedModelError, format_usd, usd_to_nano, worst_case_input_tokens
from core.rubric import CRITERIA, build_prompt

#: bge-small and most embedding models truncate at 512 tokens (plus the two special tokens)
EMBEDDING_TOKEN_LIMIT = 514


@dataclass(frozen=True)
class _NameOnly:
    """The smallest company a rubric prompt can be about."""

    name: str = "x"
    industry: str | None = None
    activity_description: str | None = None
    country: str | None = None
    website: str | None = None
    ownership_type: str | None = None


def worst_call_nanousd(block: Any, prices: PriceBook, *, allow_unpriced: bool = False) -> int:
    """The least that one call of ``block`` may cost at worst (0 for local providers).

    Raises ``UnpricedModelError`` for a paid model with no price, unless ``allow_unpriced``.
    """
    try:
        if isinstance(block, GroqLLM | AnthropicLLM):
            client = block.get_client()
            prompt = build_prompt(_NameOnly(), CRITERIA[0])
            tokens = worst_case_input_tokens([m["content"] for m in prompt])
            return prices.llm_cost(client.provider, client.model, tokens, client.max_tokens)
        if isinstance(block, ParallelEnrichment):
            return prices.run_cost(block.processor)
        if isinstance(block, WorkersAIEmbeddings):
            return prices.embedding_cost("workers-ai", block.model, EMBEDDING_TOKEN_LIMIT)
        if isinstance(block, OpenAICompatibleEmbeddings) and not block.self_hosted:
            return prices.embedding_cost("openai", block.model, EMBEDDING_TOKEN_LIMIT)
    except UnpricedModelError:
        if allow_unpriced:
            return 0
        raise
    return 0


def check_spend_preconditions(
    providers: list[str], prices: PriceBook, budget_usd: float | None, *, allow_unpriced: bool
) -> int:
    """Refuse unpriced models and a budget below one call; returns the first provider's worst call."""
    floors = [
        worst_call_nanousd(load_provider_block(reference), prices, allow_unpriced=allow_unpriced)
        for reference in providers
    ]
    first = floors[0] if floors else 0
    if budget_usd is not None and usd_to_nano(budget_usd) < first:
        raise InputError(
            f"budget_usd {format_usd(usd_to_nano(budget_usd))} is smaller than one call of {providers[0]}, "
            f"which may cost up to {format_usd(first)}: raise the budget or leave it empty"
        )
    return first
