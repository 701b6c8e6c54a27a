"""The spend policy block: the price table operators edit in the UI, and monthly budgets.

Prices default to ``genai-prices`` and the providers' published unit prices (``core.pricing``); a row here wins
over both, for a negotiated rate or a model the maintained list does not know yet.  Monthly budgets cap the
spend of a creator (the ``created_by`` of bulk actions) or of a provider (``groq``, ``parallel``...) per calendar
month (UTC), across every bulk action; a bulk action's own ``budget_usd`` caps that action.  The engine loads
the document named ``default`` when it exists; with none, prices are the defaults and only action budgets apply.
"""

from __future__ import annotations

from decimal import Decimal
from typing import ClassVar

from prefect.blocks.core import Block
from pydantic import BaseModel, Field

from core.pricing import PriceBook, TokenPrice, usd_to_nano

DEFAULT_SPEND_POLICY = "default"


class ModelPrice(BaseModel):
    """USD per million tokens."""

    input_per_million: float = Field(ge=0, description="USD per million input (prompt) tokens.")
    output_per_million: float = Field(default=0.0, ge=0, description="USD per million output tokens.")


class SpendPolicy(Block):
    """Prices that override the defaults, and monthly budgets per creator and per provider."""

    _block_type_name: ClassVar[str] = "Spend Policy"
    _block_type_slug: ClassVar[str] = "spend-policy"
    _description: ClassVar[str] = (
        "Price table overrides (USD per million tokens, per Parallel run) and monthly budgets per creator and "
        "provider. Bulk actions never start a call that could take spend past a budget."
    )

    model_prices: dict[str, ModelPrice] = Field(
        default_factory=dict,
        description="Keyed '<provider>/<model>' (e.g. 'groq/openai/gpt-oss-120b') or '<model>'; wins over "
        "genai-prices.",
    )
    processor_prices: dict[str, float] = Field(
        default_factory=dict, description="Parallel processors, USD per completed run (e.g. {'base': 0.01})."
    )
    monthly_budget_by_creator: dict[str, float] = Field(
        default_factory=dict, description="USD per calendar month (UTC) for each created_by."
    )
    monthly_budget_by_provider: dict[str, float] = Field(
        default_factory=dict,
        description="USD per calendar month (UTC) for each provider: groq, anthropic, parallel, workers-ai.",
    )

    def price_book(self) -> PriceBook:
        return PriceBook(
            model_prices={
                key: TokenPrice(Decimal(str(p.input_per_million)), Decimal(str(p.output_per_million)))
                for key, p in self.model_prices.items()
            },
            processor_prices={key: Decimal(str(usd)) for key, usd in self.processor_prices.items()},
        )

    def creator_limit(self, creator: str) -> int | None:
        usd = self.monthly_budget_by_creator.get(creator)
        return None if usd is None else usd_to_nano(usd)

    def provider_limit(self, provider: str) -> int | None:
        usd = self.monthly_budget_by_provider.get(provider)
        return None if usd is None else usd_to_nano(usd)


def load_spend_policy(name: str = DEFAULT_SPEND_POLICY) -> SpendPolicy:
    """The named policy, or an empty one (default prices, no monthly budgets) when it does not exist."""
    from blocks.loading import load_or_default

    return load_or_default(SpendPolicy, name)
