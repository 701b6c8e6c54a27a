"""The vocabulary of estimates: what is known about a provider, its limits and its history, and the arithmetic
every action's estimate shares (``core.estimates`` has the per-action estimators and the formulas)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from core.batching import balanced_calls_per_batch
from core.catalog import get_action
from core.company_checks import check_company
from core.rubric import CompanyLike

#: without ledger history: byte-level BPE tokenizers give 3-5 bytes per token on English prompts
DEFAULT_TOKENS_PER_BYTE = 0.25
#: without ledger history: a one-level JSON answer with a sentence or two of reasoning
DEFAULT_OUTPUT_TOKENS = 60
#: without history of earlier tiered scorings: the share of a tier's companies that go up to the next
DEFAULT_ESCALATION_SHARE = 0.3
#: earlier tiered companies needed before their escalation share replaces the default
MIN_TIER_HISTORY = 10
#: a hosted LLM call (GROQ, Anthropic), prompt of a few hundred tokens and a short answer (no better source)
LLM_SECONDS_PER_CALL = 1.0
#: the offline keyword rules
LOCAL_SECONDS_PER_CALL = 0.001
#: typical Parallel run times, the middle of each processor's documented range (providers.md)
PARALLEL_RUN_SECONDS: Mapping[str, float] = {"lite": 35.0, "base": 57.5, "core": 180.0, "pro": 360.0, "ultra": 900.0}
#: Parallel limits run creation to 2,000 per minute per key (providers.md)
PARALLEL_CREATIONS_PER_MINUTE = 2000
#: Workers AI allows 3,000 requests per minute (providers.md)
WORKERS_AI_REQUESTS_PER_MINUTE = 3000
#: an embedding API request of 10 short texts (no measured source)
EMBEDDING_API_SECONDS_PER_CALL = 0.3
#: the local MiniLM model: ~3 s for 200 texts on the 2-core reference host (README, embed_pipeline_vs_raw)
LOCAL_MINILM_SECONDS_PER_TEXT = 0.015
#: the engine's own cost per batch: 8,000 task runs in 47 s on the 2-core host (DESIGN.md)
ENGINE_SECONDS_PER_BATCH = 0.006


class SampleCompany(CompanyLike, Protocol):
    """A sampled company: what the rubric and the embedding template read, and its id."""

    @property
    def id(self) -> int: ...


@dataclass(frozen=True)
class Estimate:
    """What a bulk action over ``companies`` would do; counts of a sampled selection are scaled estimates."""

    action: str
    companies: int
    skipped: int
    invalid_input: int
    provider_calls: int
    estimated_cost_nanousd: int
    expected_seconds: float
    sample_size: int
    assumptions: tuple[str, ...] = ()

    @property
    def to_process(self) -> int:
        return max(0, self.companies - self.skipped - self.invalid_input)


@dataclass(frozen=True)
class LedgerHistory:
    """What the spend ledger saw of one provider and model (recent calls that recorded their input bytes)."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    input_bytes: int = 0

    @property
    def tokens_per_byte(self) -> float | None:
        return self.input_tokens / self.input_bytes if self.input_bytes > 0 and self.input_tokens > 0 else None

    @property
    def output_tokens_per_call(self) -> float | None:
        return self.output_tokens / self.calls if self.calls > 0 else None


@dataclass(frozen=True)
class TierHistory:
    """Companies of earlier tiered scorings with the same number of tiers, by the tier that decided them."""

    decided_at: tuple[int, ...] = ()

    def share_up(self, tier: int) -> float | None:
        """The share of companies reaching tier ``tier`` (0-based) that went up to the next, if enough are known."""
        reached = sum(self.decided_at[tier:])
        return sum(self.decided_at[tier + 1 :]) / reached if reached >= MIN_TIER_HISTORY else None

    @property
    def companies(self) -> int:
        return sum(self.decided_at)


@dataclass(frozen=True)
class Pace:
    """A provider's request limit: at most ``requests`` in any ``window_seconds``."""

    requests: int
    window_seconds: float

    def seconds_for(self, calls: float, latency: float) -> float:
        """When the last of ``calls`` is answered if nothing else slows them: the window-th calls wait a window."""
        if calls <= 0:
            return 0.0
        return math.floor((math.ceil(calls) - 1) / max(1, self.requests)) * self.window_seconds + latency

    def describe(self) -> str:
        return f"{self.requests:,} requests per {self.window_seconds:g} s"


@dataclass(frozen=True)
class Slots:
    """How the engine would run the action: ``tag:<tag>`` batches in flight, the block's ``calls_per_batch``."""

    tag: str
    limit: int | None  # None: the limit is missing, and the real run would stop before starting
    calls_per_batch: int = 1

    @property
    def usable(self) -> int:
        return max(1, self.limit or 1)


@dataclass(frozen=True)
class LLMTier:
    """One LLM block of a scoring (the only one, or one tier), with what is known about it."""

    reference: str
    provider: str
    model: str
    history: LedgerHistory = LedgerHistory()
    #: company id -> input hash of its complete stored score by this provider and model
    current: Mapping[int, str] = field(default_factory=dict)
    pace: Pace | None = None
    seconds_per_call: float = LLM_SECONDS_PER_CALL
    #: a cheaper tier that asks all ten criteria in one call (``core.rubric_combined``)
    combined: bool = False


# --- the shared arithmetic ---------------------------------------------------------------------------------


def expected_seconds(
    companies: int, call_size: int, slots: Slots, unit_seconds: float, paced: Sequence[float] = ()
) -> float:
    """The module docstring's duration formula."""
    if companies <= 0:
        return 0.0
    units = math.ceil(companies / call_size)
    per_batch = balanced_calls_per_batch(companies, call_size, slots.calls_per_batch, slots.usable)
    batches = math.ceil(units / per_batch)
    in_flight = min(slots.usable, batches)
    working = math.ceil(batches / in_flight) * min(per_batch, units) * unit_seconds
    return max([working, *paced]) + batches * ENGINE_SECONDS_PER_BATCH


def scaled(count: float, sample_size: int, companies: int) -> int:
    return round(count * companies / sample_size) if sample_size else 0


def units_with_work(flags: Sequence[bool], call_size: int, exact: bool) -> float:
    """Call units (``call_size`` companies in order) with at least one company to send.

    ``exact`` (the sample is the whole selection, in order): counted; otherwise the flagged share ``p`` is taken
    as spread at random, so a unit has work with probability ``1 - (1 - p) ** call_size``.
    """
    if not flags:
        return 0.0
    if exact:
        return float(sum(any(flags[i : i + call_size]) for i in range(0, len(flags), call_size)))
    share = sum(flags) / len(flags)
    return len(flags) / call_size * (1 - (1 - share) ** call_size)


def invalid_flags(sample: Sequence[SampleCompany], action: str) -> list[bool]:
    """Which sampled companies the batch would refuse before any call, exactly as ``tasks.batch`` checks them."""
    spec = get_action(action)
    if not spec.checks_input:
        return [False] * len(sample)
    required = spec.website_required
    return [
        check_company(c.name, c.website if required else None, website_required=required) is not None for c in sample
    ]


def nothing_to_do(action: str, companies: int) -> Estimate:
    """No company to look at (an empty selection): nothing would be called."""
    return Estimate(action, companies, 0, 0, 0, 0, 0.0, 0, ("no company was sampled: nothing to estimate",))


def sample_note(sample_size: int, companies: int) -> str:
    if sample_size >= companies:
        return f"every one of the {companies:,} selected companies was examined"
    return (
        f"a sample of {sample_size:,} of the {companies:,} selected companies, spread evenly over the selection; "
        "skipped and invalid shares are scaled from it"
    )


def tokens_per_byte(history: LedgerHistory, what: str) -> tuple[float, str]:
    """The ledger's input tokens per byte of ``what``, or the default, with the sentence that says which."""
    measured = history.tokens_per_byte
    if measured is None:
        return DEFAULT_TOKENS_PER_BYTE, f"{what}: 1 token per 4 input bytes (no ledger history)"
    return measured, f"{what}: {measured:.3f} input tokens per byte (ledger: {history.calls:,} calls)"


def format_duration(seconds: float) -> str:
    """``45 s``, ``12 min``, ``3 h 20 min``, ``2 d 4 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = seconds / 60
    if minutes < 90:
        return f"{minutes:.0f} min"
    hours, rest = divmod(round(minutes), 60)
    if hours < 48:
        return f"{hours} h {rest} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"
