"""What every provider call costs, in integer nano-dollars (1e-9 USD).

Money is counted in integers so that a million calls add up exactly: a float sum of 0.000075-dollar calls drifts,
and the spend is compared with the provider's own list price to the thousandth.  One token of the cheapest
priced model (Workers AI, $0.02 per million) is 20 nano-dollars, so nothing is lost to rounding.

Where prices come from, in order:

1. the operator's price table (``PriceBook.model_prices``, edited in the ``spend-policy`` block in the UI);
2. ``genai-prices``, the maintained price list, for LLMs it covers (it also knows context tiers: a Claude
   request over 200k input tokens costs more);
3. the providers' published unit prices below, for what is not a token-priced LLM (Parallel processors per
   run, Workers AI per input token);
4. local providers cost nothing.

A model found nowhere has no price: ``UnpricedModelError``.  The engine refuses to start such an action unless
the caller allows unpriced calls explicitly (they are then recorded at zero and marked unpriced).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from core.errors import InputError

NANO = Decimal(1_000_000_000)
PER_MILLION = Decimal(1_000_000)

#: Message Batches cost half the normal price (Anthropic's published discount)
BATCH_DISCOUNT = Decimal("0.5")

#: Parallel task runs by processor, USD per run (providers.md; failed runs are not billed)
PARALLEL_PROCESSOR_USD: Mapping[str, Decimal] = {
    "lite": Decimal("0.005"),
    "base": Decimal("0.010"),
    "core": Decimal("0.025"),
    "pro": Decimal("0.100"),
    "ultra": Decimal("0.300"),
}

#: Workers AI embedding models, USD per million input tokens
WORKERS_AI_PER_MILLION: Mapping[str, Decimal] = {"@cf/baai/bge-small-en-v1.5": Decimal("0.02")}

#: providers that run on this machine and are never billed
FREE_PROVIDERS = frozenset({"local-rules", "local-minilm", "local-database", "local", "self-hosted"})


class UnpricedModelError(InputError):
    """A paid model with no price anywhere: the run would spend money it cannot count."""

    def __init__(self, provider: str, model: str) -> None:
        super().__init__(
            f"no price for {provider} model {model!r}: add it to the spend-policy block's model_prices "
            "(USD per million input and output tokens), or run with allow_unpriced=true to record its calls at $0"
        )
        self.provider = provider
        self.model = model


def usd_to_nano(usd: Decimal | float | str) -> int:
    """Dollars to integer nano-dollars (half up); floats go through their shortest repr, never binary noise."""
    value = usd if isinstance(usd, Decimal) else Decimal(str(usd))
    return int((value * NANO).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def nano_to_usd(nano: int) -> float:
    """For display and JSON: nano-dollars as a float of dollars."""
    return float(Decimal(nano) / NANO)


def format_usd(nano: int) -> str:
    """``$0.001234``: six decimals under a dollar, cents above."""
    usd = Decimal(nano) / NANO
    return f"${usd:,.2f}" if abs(usd) >= 1 else f"${usd:.6f}"


#: server-side web search, per 1,000 searches (Anthropic's list price; not discounted in Message Batches)
WEB_SEARCH_USD_PER_THOUSAND: Mapping[str, Decimal] = {"anthropic": Decimal(10)}


@dataclass(frozen=True)
class TokenPrice:
    """USD per million tokens, as providers publish them."""

    input_per_million: Decimal
    output_per_million: Decimal = Decimal(0)

    def cost(self, input_tokens: int, output_tokens: int = 0) -> Decimal:
        return (input_tokens * self.input_per_million + output_tokens * self.output_per_million) / PER_MILLION


@dataclass(frozen=True)
class PriceBook:
    """The operator's price table: overrides keyed ``<provider>/<model>`` (or just ``<model>``), then defaults."""

    model_prices: Mapping[str, TokenPrice] = field(default_factory=dict)
    processor_prices: Mapping[str, Decimal] = field(default_factory=dict)

    def override(self, provider: str, model: str) -> TokenPrice | None:
        return self.model_prices.get(f"{provider}/{model}") or self.model_prices.get(model)

    def llm_cost(self, provider: str, model: str, input_tokens: int, output_tokens: int, *, batch: bool = False) -> int:
        """One LLM request's price in nano-dollars; ``batch`` applies the Message Batches discount."""
        if provider in FREE_PROVIDERS:
            return 0
        if input_tokens < 0 or output_tokens < 0:
            raise ValueError("token counts are never negative")
        own = self.override(provider, model)
        if own is not None:
            usd = own.cost(input_tokens, output_tokens)
        else:
            usd = _maintained_price(provider, model, input_tokens, output_tokens)
        return usd_to_nano(usd * BATCH_DISCOUNT if batch else usd)

    def check_llm(self, provider: str, model: str) -> None:
        """Raise ``UnpricedModelError`` now, before any call, when the model has no price."""
        self.llm_cost(provider, model, 1, 1)

    def web_search_cost(self, provider: str, searches: int) -> int:
        """Server-side web searches (Anthropic's tool: $10 per 1,000, the same in a Message Batch)."""
        if provider in FREE_PROVIDERS or searches <= 0:
            return 0
        return usd_to_nano(WEB_SEARCH_USD_PER_THOUSAND.get(provider, Decimal(0)) * searches / 1000)

    def run_cost(self, processor: str) -> int:
        """One completed Parallel task run in nano-dollars."""
        usd = self.processor_prices.get(processor, PARALLEL_PROCESSOR_USD.get(processor))
        if usd is None:
            raise UnpricedModelError("parallel", f"processor {processor}")
        return usd_to_nano(usd)

    def embedding_cost(self, provider: str, model: str, input_tokens: int) -> int:
        """An embedding request billed by its input tokens."""
        if provider in FREE_PROVIDERS:
            return 0
        own = self.override(provider, model)
        if own is not None:
            return usd_to_nano(own.cost(input_tokens))
        per_million = WORKERS_AI_PER_MILLION.get(model)
        if per_million is None:
            return usd_to_nano(_maintained_price(provider, model, input_tokens, 0))
        return usd_to_nano(TokenPrice(per_million).cost(input_tokens))


DEFAULT_PRICES = PriceBook()


def _maintained_price(provider: str, model: str, input_tokens: int, output_tokens: int) -> Decimal:
    """The price from ``genai-prices`` (its bundled snapshot: no network); ``UnpricedModelError`` if it has none."""
    from genai_prices import Usage, calc_price

    try:
        found = calc_price(Usage(input_tokens=input_tokens, output_tokens=output_tokens), model, provider_id=provider)
    except LookupError:
        raise UnpricedModelError(provider, model) from None
    return Decimal(found.total_price)


def worst_case_input_tokens(texts: list[str], *, per_message: int = 16) -> int:
    """An upper bound on a request's input tokens without the provider's tokenizer.

    Byte-level BPE and SentencePiece tokenizers never emit more tokens than the text has UTF-8 bytes; each
    message adds a few template tokens.  Generous (real prompts run 3-5 bytes per token), which is the point: a
    reservation must never be smaller than what the call can cost.
    """
    return sum(len(text.encode("utf-8")) + per_message for text in texts)
