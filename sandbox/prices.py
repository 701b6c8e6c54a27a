"""The providers' public list prices, and what the sandbox would bill for a call.

The sandbox is the instrument that measures "the list price of every call the provider accepted", so a benchmark
can check the project's recorded spend against it. It keeps its own price list (never the project's) and
computes in exact arithmetic: prices are ``Decimal`` USD, a bill is an ``int`` of nano-dollars (1e-9 USD), and
totals are sums of ints, so no float rounding creeps into a comparison of millions of calls.

When a call is billed (only answers the client received with a 2xx, completed runs, succeeded batch items) is
decided where calls are answered: the gateway, :mod:`sandbox.jobs` and :mod:`sandbox.state`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

from sandbox.config import Provider, model_alias

NANOUSD_PER_USD = 1_000_000_000
TOKENS_PER_PRICE_UNIT = 1_000_000  # token prices are quoted per million tokens
BATCH_FACTOR = Decimal("0.5")  # Anthropic Message Batches cost 50% of the normal price
LONG_CONTEXT_INPUT_TOKENS = 200_000  # above this many input tokens a request pays the long-context rate
WORKERS_AI_BGE_SMALL = "@cf/baai/bge-small-en-v1.5"
# Server-side web search, per search ($10 per 1,000), on top of the tokens; Message Batches do not discount it.
WEB_SEARCH_PRICES_USD: Mapping[Provider, Decimal] = {"anthropic": Decimal("10") / 1000}


@dataclass(frozen=True)
class TokenRate:
    """USD per million input and output tokens."""

    input: Decimal
    output: Decimal = Decimal(0)


@dataclass(frozen=True)
class TokenPrice:
    """A model's rate, and the rate for requests whose input exceeds :data:`LONG_CONTEXT_INPUT_TOKENS`."""

    rate: TokenRate
    long_context: TokenRate | None = None

    def rate_for(self, input_tokens: int) -> TokenRate:
        if self.long_context is not None and input_tokens > LONG_CONTEXT_INPUT_TOKENS:
            return self.long_context
        return self.rate


def _rate(input_usd: str, output_usd: str = "0") -> TokenRate:
    return TokenRate(Decimal(input_usd), Decimal(output_usd))


TOKEN_PRICES: Mapping[Provider, Mapping[str, TokenPrice]] = {
    "groq": {
        "openai/gpt-oss-120b": TokenPrice(_rate("0.15", "0.60")),
        "openai/gpt-oss-20b": TokenPrice(_rate("0.075", "0.30")),
        "llama-3.1-8b-instant": TokenPrice(_rate("0.05", "0.08")),
    },
    "anthropic": {
        "claude-sonnet-4-5": TokenPrice(_rate("3", "15"), long_context=_rate("6", "22.5")),
        "claude-haiku-4-5": TokenPrice(_rate("1", "5")),
        "claude-opus-4-1": TokenPrice(_rate("15", "75")),
    },
    "openai": {"gpt-4o-mini": TokenPrice(_rate("0.15", "0.60"))},
    "workers_ai": {WORKERS_AI_BGE_SMALL: TokenPrice(_rate("0.02"))},
}

# Parallel bills a task run once, when it completes; failed and cancelled runs are free.
RUN_PRICES_USD: Mapping[str, Decimal] = {
    "lite": Decimal("0.005"),
    "base": Decimal("0.010"),
    "core": Decimal("0.025"),
    "pro": Decimal("0.100"),
    "ultra": Decimal("0.300"),
}


@dataclass(frozen=True)
class Charge:
    """What one billable call costs: ``nanousd``, or ``None`` when its model has no list price (unpriced).

    ``web_search_requests`` counts the server-side searches the call made; their price is part of ``nanousd``.
    """

    nanousd: int | None
    web_search_requests: int = 0

    @property
    def priced(self) -> bool:
        return self.nanousd is not None


def to_nanousd(usd: Decimal) -> int:
    """USD as whole nano-dollars (exact for every price above; half a nano-dollar rounds to even)."""
    return int((usd * NANOUSD_PER_USD).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def token_price(provider: Provider, model: str) -> TokenPrice | None:
    """The list price of ``model`` at ``provider``; dated snapshots fall back to their undated alias."""
    prices = TOKEN_PRICES.get(provider, {})
    return prices.get(model) or prices.get(model_alias(model))


def token_charge(
    provider: Provider,
    model: str,
    input_tokens: int,
    output_tokens: int = 0,
    *,
    batch: bool = False,
    web_searches: int = 0,
) -> Charge:
    """The charge for a call that used these tokens (``batch``: an Anthropic Message Batches request, tokens at
    half price) and made ``web_searches`` server-side searches (full price, batch or not).

    A model without a price makes the whole call unpriced, its searches included (they are still counted).
    """
    price = token_price(provider, model)
    search_price = WEB_SEARCH_PRICES_USD.get(provider)
    if price is None or (web_searches and search_price is None):
        return Charge(None, web_searches)
    rate = price.rate_for(input_tokens)
    usd = (input_tokens * rate.input + output_tokens * rate.output) / TOKENS_PER_PRICE_UNIT
    if batch:
        usd *= BATCH_FACTOR
    if web_searches:
        assert search_price is not None
        usd += web_searches * search_price
    return Charge(to_nanousd(usd), web_searches)


def run_charge(processor: str) -> Charge:
    """The charge for a completed Parallel task run of ``processor``."""
    usd = RUN_PRICES_USD.get(processor)
    return Charge(None if usd is None else to_nanousd(usd))
