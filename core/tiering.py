"""Tiered scoring: the cheap tier decides what it can, the premium tier only what the cheap one leaves uncertain.

What a score is *for* is its band (``Low``/``Medium``/``High`` adoption, cut at ``band_edges``): a company far
from every edge lands in the same band whoever scores it, so paying the premium model to confirm it buys
nothing.  A cheap total within ``margin`` points of an edge could fall on either side, and a criterion the
cheap tier could not decide (no valid answer after its repair calls, or a provider failure) leaves the total
unknown: both go up a tier.  The rule is a parameter of ``score_llm_adoption`` (``escalation``), so a team
that only cares about one edge, or wants a wider safety margin, says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.errors import InputError
from core.rubric import MAX_TOTAL

BAND_NAMES = ("Low", "Medium", "High", "Very High")


class EscalationRule(BaseModel):
    """When a company goes up a tier.  Defaults: bands 0-14, 15-29, 30-50 and a margin of 3 points.

    The margin trades cost for agreement: a cheap model that gets one criterion in five a level wrong moves a
    total by a few points, so a margin of 3 sends up about a quarter of the companies and keeps 99 % of them in
    the band the premium model would give (``bench/bench_spend.py``; the README has the measured table).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    band_edges: tuple[int, ...] = Field(
        default=(15, 30),
        description="Totals where a band starts (0-50, increasing): 15 and 30 make Low 0-14, Medium 15-29, High 30+.",
    )
    margin: int = Field(
        default=3, ge=0, le=MAX_TOTAL, description="A cheap total within this many points of an edge is uncertain."
    )
    escalate_undecided: bool = Field(
        default=True, description="A criterion the cheap tier could not decide sends the company up a tier."
    )

    @field_validator("band_edges")
    @classmethod
    def _increasing(cls, edges: tuple[int, ...]) -> tuple[int, ...]:
        if not edges or len(edges) >= len(BAND_NAMES) or list(edges) != sorted(set(edges)):
            raise ValueError(f"band_edges: 1 to {len(BAND_NAMES) - 1} increasing totals, e.g. [15, 30]")
        if edges[0] <= 0 or edges[-1] > MAX_TOTAL:
            raise ValueError(f"band_edges must lie within 1-{MAX_TOTAL}")
        return edges

    def band(self, total: int) -> str:
        return BAND_NAMES[sum(total >= edge for edge in self.band_edges)]

    def uncertainty(self, total: int | None, undecided: Sequence[str] = ()) -> str | None:
        """Why a cheap tier's result is not good enough, or None when it stands."""
        if undecided and self.escalate_undecided:
            return f"undecided: {', '.join(undecided)}"
        if total is None:
            return "no total"
        near = [edge for edge in self.band_edges if abs(total - edge) <= self.margin]
        if near:
            return f"total {total} within {self.margin} of band edge {near[0]}"
        return None


@dataclass(frozen=True)
class Tiers:
    """The provider blocks of a tiered scoring, cheapest first; the last is the premium one."""

    providers: tuple[str, ...]

    @classmethod
    def of(cls, providers: Sequence[str] | None, premium: str) -> Tiers:
        """``providers`` as given (the engine's ``provider`` must be the last), or the single ``premium`` tier."""
        if not providers:
            return cls((premium,))
        chosen = tuple(providers)
        if len(set(chosen)) != len(chosen):
            raise InputError(f"tiers name a provider twice: {list(chosen)}")
        if chosen[-1] != premium:
            raise InputError(
                f"the last tier is the premium provider the action runs on: tiers end with {chosen[-1]!r} but "
                f"provider is {premium!r}"
            )
        return cls(chosen)

    @property
    def tiered(self) -> bool:
        return len(self.providers) > 1
