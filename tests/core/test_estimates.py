"""The estimate of a bulk action's calls, cost and duration (``core.estimates``), and what it reads
(``core.estimate_inputs``): every expected figure is worked out here from the rubric, the price book and the
formulas the module documents."""

from __future__ import annotations

import math
import uuid
from dataclasses import replace

import pytest
from sqlalchemy import insert, update

from blocks.database import CompanyDatabase
from core.estimate_inputs import SampledCompany, ledger_history, sample_companies, tier_history
from core.estimate_model import (
    ENGINE_SECONDS_PER_BATCH,
    LLM_SECONDS_PER_CALL,
    LedgerHistory,
    LLMTier,
    Pace,
    Slots,
    TierHistory,
    expected_seconds,
    format_duration,
)
from core.estimates import (
    DEFAULT_OUTPUT_TOKENS,
    PARALLEL_RUN_SECONDS,
    EmbeddingModel,
    estimate_embeddings,
    estimate_enrichment,
    estimate_local,
    estimate_scoring,
)
from core.pricing import DEFAULT_PRICES, PriceBook
from core.rubric import CRITERIA, build_prompt, input_sha256
from core.schema import BulkActionOutcome, Company, SpendEntry
from core.selection import Selection
from core.store import create_bulk_action
from core.text import embedding_text, text_sha256
from tests.helpers import seed

GROQ_MODEL = "openai/gpt-oss-120b"
CHEAP_MODEL = "openai/gpt-oss-20b"
SLOTS = Slots("groq", 2, 1)


def company(
    cid: int, *, name: str = "Acme Analytics B.V.", website: str | None = "https://acme.example"
) -> SampledCompany:
    return SampledCompany(
        id=cid,
        name=name,
        website=website,
        industry="Software",
        country="Netherlands",
        activity_description=f"Builds data platforms and machine-learning tools for retailers ({cid}).",
        ownership_type="private",
    )


def prompt_bytes(c: SampledCompany) -> int:
    return sum(len(m["content"].encode("utf-8")) for k in CRITERIA for m in build_prompt(c, k))


def groq(model: str = GROQ_MODEL, **changes: object) -> LLMTier:
    return replace(LLMTier(reference=f"groq-llm/{model}", provider="groq", model=model), **changes)  # type: ignore[arg-type]


# --- score_llm_adoption ------------------------------------------------------------------------------------


def test_scoring_without_history_reads_4_bytes_a_token_and_a_default_answer() -> None:
    sample = [company(i) for i in range(1, 4)]
    found = estimate_scoring(3, sample, [groq()], DEFAULT_PRICES, SLOTS)

    mean_bytes = sum(prompt_bytes(c) for c in sample) / 30
    per_call = DEFAULT_PRICES.llm_cost("groq", GROQ_MODEL, round(mean_bytes / 4), DEFAULT_OUTPUT_TOKENS)
    assert (found.companies, found.skipped, found.invalid_input, found.provider_calls) == (3, 0, 0, 30)
    assert found.estimated_cost_nanousd == 30 * per_call > 0
    assert any("1 token per 4 input bytes (no ledger history)" in a for a in found.assumptions)
    assert any(f"{DEFAULT_OUTPUT_TOKENS} output tokens per call (no ledger history)" in a for a in found.assumptions)


def test_scoring_reads_tokens_per_byte_and_answer_length_from_the_ledger() -> None:
    sample = [company(i) for i in range(1, 4)]
    history = LedgerHistory(calls=100, input_tokens=10_000, output_tokens=4_000, input_bytes=50_000)
    found = estimate_scoring(3, sample, [groq(history=history)], DEFAULT_PRICES, SLOTS)

    mean_bytes = sum(prompt_bytes(c) for c in sample) / 30
    per_call = DEFAULT_PRICES.llm_cost("groq", GROQ_MODEL, round(mean_bytes * 0.2), 40)
    assert found.estimated_cost_nanousd == 30 * per_call
    assert any("0.200 input tokens per byte (ledger: 100 calls)" in a for a in found.assumptions)


def test_current_scores_and_invalid_companies_cost_nothing_unless_rescored() -> None:
    sample = [company(1), company(2, website=None), company(3, name="  "), company(4)]
    current = {1: input_sha256(sample[0]), 4: "a hash of an older profile"}
    tier = groq(current=current)

    found = estimate_scoring(4, sample, [tier], DEFAULT_PRICES, SLOTS)
    assert (found.skipped, found.invalid_input, found.provider_calls) == (1, 2, 10)

    forced = estimate_scoring(4, sample, [tier], DEFAULT_PRICES, SLOTS, rescore=True)
    assert (forced.skipped, forced.invalid_input, forced.provider_calls) == (0, 2, 20)


def test_a_sample_scales_to_the_whole_selection() -> None:
    sample = [company(i, website=None if i <= 2 else "https://acme.example") for i in range(1, 11)]
    found = estimate_scoring(1000, sample, [groq()], DEFAULT_PRICES, SLOTS)

    assert (found.invalid_input, found.provider_calls, found.sample_size) == (200, 8000, 10)
    assert any("a sample of 10 of the 1,000 selected companies" in a for a in found.assumptions)


def test_tiered_scoring_pays_the_first_tier_for_all_and_the_next_for_the_escalated_share() -> None:
    sample = [company(i) for i in range(1, 11)]
    tiers = [groq(CHEAP_MODEL), groq()]

    assumed = estimate_scoring(10, sample, tiers, DEFAULT_PRICES, SLOTS)
    assert assumed.provider_calls == 100 + 30  # 30% of the companies go up, when nothing is known
    assert any("30% of the companies at tier 1 go up to tier 2 (assumed" in a for a in assumed.assumptions)

    learned = estimate_scoring(10, sample, tiers, DEFAULT_PRICES, SLOTS, tier_history=TierHistory((80, 20)))
    assert learned.provider_calls == 100 + 20
    assert any("20% of the companies at tier 1 go up to tier 2 (earlier" in a for a in learned.assumptions)

    cheap = DEFAULT_PRICES.llm_cost("groq", CHEAP_MODEL, 1000, 60)
    premium = DEFAULT_PRICES.llm_cost("groq", GROQ_MODEL, 1000, 60)
    assert cheap < premium and 0 < learned.estimated_cost_nanousd < assumed.estimated_cost_nanousd


def test_a_company_current_at_the_cheap_tier_is_skipped_unless_it_goes_up() -> None:
    sample = [company(1), company(2)]
    cheap = groq(CHEAP_MODEL, current={1: input_sha256(sample[0])})
    found = estimate_scoring(200, sample, [cheap, groq()], DEFAULT_PRICES, SLOTS, tier_history=TierHistory((75, 25)))

    # company 1 is skipped 75% of the time (it stays at the cheap tier, where it is current): 0.75 of 100 companies
    assert found.skipped == 75
    # tier 1: company 2 only (100 companies x 10); tier 2: a quarter of both (50 companies x 10)
    assert found.provider_calls == 1000 + 500


def test_a_model_without_a_price_is_said_and_costs_nothing() -> None:
    tier = LLMTier(reference="groq-llm/new", provider="groq", model="a-model-nobody-prices")
    found = estimate_scoring(1, [company(1)], [tier], PriceBook(), SLOTS)
    assert found.estimated_cost_nanousd == 0 and found.provider_calls == 10
    assert any("has no price: the real run would be refused" in a for a in found.assumptions)


def test_local_rules_cost_nothing() -> None:
    tier = LLMTier(reference="local-rules-llm/default", provider="local-rules", model="local-rules-v1")
    found = estimate_scoring(2, [company(1), company(2)], [tier], DEFAULT_PRICES, SLOTS)
    assert (found.provider_calls, found.estimated_cost_nanousd) == (20, 0)


# --- enrich_companies --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("processor", "usd"), [("base", 0.01), ("pro", 0.1)])
def test_enrichment_pays_one_run_per_company_with_a_public_website(processor: str, usd: float) -> None:
    sample = [company(1), company(2), company(3, website="http://localhost/admin"), company(4, website=None)]
    found = estimate_enrichment(4, sample, processor, DEFAULT_PRICES, Slots("parallel", 16, 1))

    assert (found.provider_calls, found.invalid_input, found.skipped) == (2, 2, 0)
    assert found.estimated_cost_nanousd == 2 * round(usd * 1e9)
    # one call unit of 5 companies, its runs side by side: one run's typical time
    assert found.expected_seconds == pytest.approx(PARALLEL_RUN_SECONDS[processor] + ENGINE_SECONDS_PER_BATCH)


def test_enrichment_takes_rounds_of_runs_when_the_slots_are_full() -> None:
    sample = [company(i) for i in range(1, 11)]
    found = estimate_enrichment(1000, sample, "lite", DEFAULT_PRICES, Slots("parallel", 4, 1))
    # 200 units of 5 in 200 batches, 4 in flight: 50 rounds of one 35-s run
    assert found.expected_seconds == pytest.approx(50 * 35.0 + 200 * ENGINE_SECONDS_PER_BATCH)
    capped = estimate_enrichment(1000, sample, "lite", DEFAULT_PRICES, Slots("parallel", 4, 1), max_active_runs=10)
    assert capped.expected_seconds == pytest.approx(100 * 35.0 + 200 * ENGINE_SECONDS_PER_BATCH)


# --- generate_embeddings -----------------------------------------------------------------------------------

LOCAL = EmbeddingModel("local-minilm-embeddings/default", "local-minilm", "all-MiniLM", "all-MiniLM")
WORKERS = EmbeddingModel(
    "workers-ai-embeddings/default",
    "workers-ai",
    "@cf/baai/bge-small-en-v1.5",
    "@cf/baai/bge-small-en-v1.5#cls",
    pace=Pace(3000, 60.0),
)


def test_embeddings_call_once_per_ten_companies_with_a_changed_text() -> None:
    sample = [company(i) for i in range(1, 26)]
    fresh = estimate_embeddings(25, sample, {}, LOCAL, DEFAULT_PRICES, Slots("embeddings-local", 4, 20))
    assert (fresh.provider_calls, fresh.skipped, fresh.estimated_cost_nanousd) == (3, 0, 0)

    current = {c.id: text_sha256(embedding_text(c)) for c in sample[:10]}
    current[11] = "an older text"
    again = estimate_embeddings(25, sample, current, LOCAL, DEFAULT_PRICES, Slots("embeddings-local", 4, 20))
    assert (again.provider_calls, again.skipped) == (2, 10)  # the first ten are one call that is never made


def test_paid_embeddings_are_billed_by_their_tokens() -> None:
    sample = [company(i) for i in range(1, 21)]
    found = estimate_embeddings(20, sample, {}, WORKERS, DEFAULT_PRICES, Slots("workers-ai", 8, 10))
    per_call_bytes = sum(len(embedding_text(c).encode()) for c in sample) / 2
    per_call = DEFAULT_PRICES.embedding_cost("workers-ai", WORKERS.model, round(per_call_bytes / 4))
    assert found.provider_calls == 2 and found.estimated_cost_nanousd == 2 * per_call > 0


def test_a_sampled_selection_spreads_the_changed_texts_at_random() -> None:
    sample = [company(i) for i in range(1, 11)]
    current = {c.id: text_sha256(embedding_text(c)) for c in sample[:5]}  # half are current
    found = estimate_embeddings(1000, sample, current, LOCAL, DEFAULT_PRICES, Slots("embeddings-local", 4, 20))
    assert found.skipped == 500
    assert found.provider_calls == round(100 * (1 - 0.5**10))


# --- duration, local actions, empty selections -------------------------------------------------------------


def test_duration_is_the_slower_of_the_slots_and_the_pace() -> None:
    # 30 companies: 10 units of 3, one per batch, 2 in flight; a unit is 30 calls of 1 s
    assert expected_seconds(30, 3, Slots("groq", 2, 1), 30.0) == pytest.approx(5 * 30.0 + 10 * 0.006)
    pace = Pace(30, 60.0)
    # 300 calls at 30 per minute: the last one starts after 9 full windows
    assert pace.seconds_for(300, LLM_SECONDS_PER_CALL) == 9 * 60 + 1
    assert pace.seconds_for(30, LLM_SECONDS_PER_CALL) == 1
    sample = [company(i) for i in range(1, 31)]
    found = estimate_scoring(30, sample, [groq(pace=pace)], DEFAULT_PRICES, Slots("groq", 2, 1))
    assert found.expected_seconds == pytest.approx(541 + 10 * ENGINE_SECONDS_PER_BATCH)


def test_a_missing_limit_is_said() -> None:
    found = estimate_scoring(3, [company(1)], [groq()], DEFAULT_PRICES, Slots("groq", None, 1))
    assert any("no tag:groq concurrency limit: the real run would stop" in a for a in found.assumptions)


def test_local_actions_call_nothing_and_cost_nothing() -> None:
    found = estimate_local("update_status", 5000, Slots("database-writes", 2, 10))
    assert (found.provider_calls, found.estimated_cost_nanousd, found.skipped) == (0, 0, 0)
    # 100 units of 50, 10 per batch: 10 batches of engine time
    assert found.expected_seconds == pytest.approx(10 * ENGINE_SECONDS_PER_BATCH)


def test_an_empty_selection_estimates_nothing() -> None:
    found = estimate_scoring(0, [], [groq()], DEFAULT_PRICES, SLOTS)
    assert (found.provider_calls, found.estimated_cost_nanousd, found.expected_seconds) == (0, 0, 0.0)


@pytest.mark.parametrize(
    ("seconds", "text"), [(45, "45 s"), (600, "10 min"), (3 * 3600 + 1200, "3 h 20 min"), (52 * 3600, "2 d 4 h")]
)
def test_durations_read_as_people_say_them(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


# --- what an estimate reads --------------------------------------------------------------------------------


def test_the_sample_is_spread_over_the_selection_in_its_order(db: CompanyDatabase) -> None:
    ids = seed(db, 20, seed_value=7701)
    industry = f"Estimate sample {uuid.uuid4().hex[:8]}"
    with db.session() as session:
        for position, cid in enumerate(ids):
            session.execute(update(Company).where(Company.id == cid).values(industry=industry, priority=100 - position))
    selection = Selection.model_validate({"filter": {"industries": [industry]}, "order": "priority"})
    with db.read_session() as session:
        spread = sample_companies(session, selection, 20, size=5)
        everyone = sample_companies(session, selection, 20)
        listed = sample_companies(session, Selection(ids=ids[:3]), 3)
    assert [c.id for c in spread] == ids[::4]
    assert [c.id for c in everyone] == ids
    assert sorted(c.id for c in listed) == sorted(ids[:3]) and listed[0].name


def test_the_ledger_history_is_per_provider_and_model(db: CompanyDatabase) -> None:
    model = f"model-{uuid.uuid4().hex[:8]}"
    rows = [
        {"provider": "groq", "model": model, "calls": 1, "input_tokens": 100, "output_tokens": 30, "input_bytes": 500},
        {"provider": "groq", "model": model, "calls": 2, "input_tokens": 300, "output_tokens": 90, "input_bytes": 1500},
        {"provider": "groq", "model": model, "calls": 1, "input_tokens": 80, "output_tokens": 5, "input_bytes": 0},
        {"provider": "other", "model": model, "calls": 9, "input_tokens": 9, "output_tokens": 9, "input_bytes": 9},
    ]
    with db.session() as session:
        session.execute(
            insert(SpendEntry),
            [{**r, "action": "score_llm_adoption", "created_by": "pytest", "cost_nanousd": 1} for r in rows],
        )
    with db.read_session() as session:
        found = ledger_history(session, ["groq"], model)
        nothing = ledger_history(session, ["groq"], model + "-unknown")
    assert found == LedgerHistory(calls=3, input_tokens=400, output_tokens=120, input_bytes=2000)
    assert (found.tokens_per_byte, found.output_tokens_per_call) == (0.2, 40)
    assert nothing.tokens_per_byte is None and nothing.output_tokens_per_call is None


def test_the_escalation_history_comes_from_tiered_outcomes(db: CompanyDatabase) -> None:
    ids = seed(db, 6, seed_value=7702)
    details = [
        "total 12/50 by groq small (tier 1 of 2) in 10 calls",
        "total 3/50 by groq small (tier 1 of 2) in 10 calls",
        "scores are current for this model (tier 1 of 2): total 40/50",
        "total 16/50 by groq big (tier 2 of 2) in 20 calls",
        "total 29/50 by groq big (tier 1 of 3) in 20 calls",  # another number of tiers
        "InvalidProviderOutputError: no valid answer",
    ]
    with db.session() as session:
        before = tier_history(session, 2)
        record = create_bulk_action(
            session,
            action="score_llm_adoption",
            company_ids=ids,
            created_by="pytest",
            parameters={"options": {"tiers": ["groq-llm/small", "groq-llm/big"]}},
        )
        for cid, detail in zip(ids, details, strict=True):
            session.execute(
                update(BulkActionOutcome)
                .where(BulkActionOutcome.bulk_action_id == record.id, BulkActionOutcome.company_id == cid)
                .values(detail=detail)
            )
    with db.read_session() as session:
        after = tier_history(session, 2)
    assert [a - b for a, b in zip(after.decided_at, before.decided_at or (0, 0), strict=True)] == [3, 1]
    assert TierHistory((3, 1)).share_up(0) is None  # too few companies to replace the default
    assert TierHistory((30, 10)).share_up(0) == 0.25
    assert math.isclose(TierHistory((60, 30, 10)).share_up(1) or 0, 0.25)
