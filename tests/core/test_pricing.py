"""Each price path of ``core.pricing``, in exact nano-dollars."""

from __future__ import annotations

from decimal import Decimal

import pytest

from core.pricing import (
    PriceBook,
    TokenPrice,
    UnpricedModelError,
    format_usd,
    nano_to_usd,
    usd_to_nano,
    worst_case_input_tokens,
)

BOOK = PriceBook()


def test_groq_llm_calls_cost_their_tokens_at_the_maintained_price() -> None:
    # gpt-oss-120b on GROQ: $0.15 / $0.60 per million tokens -> 150 and 600 nano-dollars per token
    assert BOOK.llm_cost("groq", "openai/gpt-oss-120b", 1_000, 100) == 1_000 * 150 + 100 * 600


def test_anthropic_context_tier_and_batch_discount() -> None:
    normal = BOOK.llm_cost("anthropic", "claude-sonnet-4-5", 10_000, 1_000)
    assert normal == 10_000 * 3_000 + 1_000 * 15_000
    assert BOOK.llm_cost("anthropic", "claude-sonnet-4-5", 10_000, 1_000, batch=True) == normal // 2
    # above 200k input tokens a request is billed at the long-context rate ($6 / $22.50)
    assert BOOK.llm_cost("anthropic", "claude-sonnet-4-5", 300_000, 0) == 300_000 * 6_000


def test_the_operators_price_table_wins_over_the_maintained_one() -> None:
    book = PriceBook(model_prices={"groq/openai/gpt-oss-120b": TokenPrice(Decimal("1"), Decimal("2"))})
    assert book.llm_cost("groq", "openai/gpt-oss-120b", 1_000, 1_000) == 1_000 * 1_000 + 1_000 * 2_000
    bare = PriceBook(model_prices={"my-finetune": TokenPrice(Decimal("0.5"))})
    assert bare.llm_cost("groq", "my-finetune", 2_000, 0) == 1_000_000


def test_parallel_runs_by_processor_and_overrides() -> None:
    assert BOOK.run_cost("base") == usd_to_nano("0.01")
    assert BOOK.run_cost("ultra") == usd_to_nano("0.3")
    assert PriceBook(processor_prices={"base": Decimal("0.008")}).run_cost("base") == 8_000_000
    with pytest.raises(UnpricedModelError, match="processor nope"):
        BOOK.run_cost("nope")


def test_workers_ai_by_input_tokens_and_local_providers_are_free() -> None:
    assert BOOK.embedding_cost("workers-ai", "@cf/baai/bge-small-en-v1.5", 1_000) == 1_000 * 20
    assert BOOK.embedding_cost("local-minilm", "all-MiniLM-L6-v2", 10**6) == 0
    assert BOOK.llm_cost("local-rules", "local-rules-v1", 10**6, 10**6) == 0


def test_an_unknown_model_has_no_price_and_says_how_to_give_it_one() -> None:
    with pytest.raises(UnpricedModelError, match="model_prices") as raised:
        BOOK.check_llm("groq", "no-such-model-2099")
    assert raised.value.model == "no-such-model-2099"


def test_money_conversions_are_exact() -> None:
    assert usd_to_nano(0.1) == 100_000_000  # not 100000000.00000001
    assert sum(usd_to_nano("0.000075") for _ in range(1_000_000)) == usd_to_nano(75)
    assert nano_to_usd(1_500_000_000) == 1.5
    assert format_usd(1_234) == "$0.000001" and format_usd(12_346_000_000) == "$12.35"


def test_the_worst_case_of_a_prompt_is_never_below_its_bytes() -> None:
    texts = ["héllo wörld", "x" * 100]
    assert worst_case_input_tokens(texts) == len("héllo wörld".encode()) + 100 + 2 * 16
