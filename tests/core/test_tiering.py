"""The escalation rule of tiered scoring."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from core.errors import InputError
from core.tiering import EscalationRule, Tiers


def test_totals_near_a_band_edge_or_undecided_criteria_go_up_a_tier() -> None:
    rule = EscalationRule(band_edges=(15, 30), margin=4)
    assert rule.uncertainty(0) is None and rule.uncertainty(22) is None and rule.uncertainty(50) is None
    assert rule.uncertainty(11) == "total 11 within 4 of band edge 15"
    assert rule.uncertainty(34) == "total 34 within 4 of band edge 30"
    assert rule.uncertainty(35) is None
    assert rule.uncertainty(3, ["data_maturity"]) == "undecided: data_maturity"
    assert EscalationRule(escalate_undecided=False).uncertainty(3, ["data_maturity"]) is None
    assert [rule.band(t) for t in (0, 14, 15, 29, 30, 50)] == ["Low", "Low", "Medium", "Medium", "High", "High"]


@pytest.mark.parametrize("edges", [(), (30, 15), (15, 15), (0, 10), (10, 60), (5, 10, 20, 30)])
def test_band_edges_must_be_increasing_totals(edges: tuple[int, ...]) -> None:
    with pytest.raises(ValidationError):
        EscalationRule(band_edges=edges)


def test_tiers_end_with_the_premium_provider() -> None:
    assert Tiers.of(None, "groq-llm/big").providers == ("groq-llm/big",)
    assert Tiers.of(["groq-llm/small", "groq-llm/big"], "groq-llm/big").tiered
    with pytest.raises(InputError, match="last tier"):
        Tiers.of(["groq-llm/big", "groq-llm/small"], "groq-llm/big")
    with pytest.raises(InputError, match="twice"):
        Tiers.of(["groq-llm/big", "groq-llm/big"], "groq-llm/big")
