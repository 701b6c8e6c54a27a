"""The merge's pure decisions: refusals, the fill order, the score-move rule, and the no-cycle invariant."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.merge import (
    Member,
    MergeCycleError,
    check_merge_target,
    fills_for,
    order_losers,
    refusal,
    score_moves_for,
)
from core.schema import CompanyStatus

SEEN = datetime(2026, 11, 1, tzinfo=UTC)


def member(cid: int, *, winner: bool = False, **values: object) -> Member:
    return Member(cid, winner, SEEN, exists=True, status=CompanyStatus.ACTIVE, updated_at=SEEN, values=values)


def test_the_most_complete_loser_fills_first_and_nothing_set_is_overwritten() -> None:
    sparse = member(2, industry="From the sparse one", ownership_type="family")
    full = member(3, website="https://a.example", domain="a.example", industry="Software", country="NL")
    losers = order_losers([sparse, full])
    assert [m.company_id for m in losers] == [3, 2]
    fills, sources = fills_for({"country": "BE", "industry": "", "website": None}, losers)
    assert fills == {
        "website": "https://a.example",
        "domain": "a.example",
        "industry": "Software",
        "ownership_type": "family",
    }
    assert sources == {"website": 3, "domain": 3, "industry": 3, "ownership_type": 2}


def test_the_classification_comes_whole_and_only_to_a_winner_never_classified() -> None:
    classified = member(2, taxonomy_version="v1", sector="J", subsector="62", business_model="b2b")
    assert fills_for({"taxonomy_version": None}, [classified])[0] == {
        "taxonomy_version": "v1",
        "sector": "J",
        "subsector": "62",
        "business_model": "b2b",
    }
    assert fills_for({"taxonomy_version": "v1", "sector": None}, [classified])[0] == {}


def test_refusals_name_every_member_that_changed_or_left() -> None:
    later = SEEN + timedelta(seconds=1)
    members = [
        member(1, winner=True),
        Member(2, False, SEEN, exists=True, status=CompanyStatus.ACTIVE, updated_at=later),
        Member(3, False, SEEN, exists=True, status=CompanyStatus.MERGED, merged_into_id=9, updated_at=later),
        Member(4, False, SEEN),
    ]
    reason = refusal(members, 1)
    assert reason is not None
    assert "member 2 changed since the sweep" in reason
    assert "member 3 is merged into 9" in reason
    assert "member 4 no longer exists" in reason
    assert refusal([member(1, winner=True), member(2)], 1) is None
    deleted_winner = Member(1, True, SEEN, exists=True, status=CompanyStatus.DELETED, updated_at=SEEN)
    assert refusal([deleted_winner, member(2)], 1) == "winner 1 is deleted"
    assert refusal([member(1, winner=True)], 1) == "fewer than two members"


def test_score_sets_move_whole_from_the_first_loser_that_has_them() -> None:
    first, second = member(2), member(3)
    rows = {
        2: [(20, "groq", "m1", "s"), (21, "groq", "m1", "s"), (22, "groq", "m-winner", "s")],
        3: [(30, "groq", "m1", "s"), (31, "groq", "m2", "s")],
    }
    moves = score_moves_for({("groq", "m-winner")}, [first, second], rows)
    assert [(m.row_id, m.loser_id) for m in moves] == [(20, 2), (21, 2), (31, 3)]


def test_merged_into_can_never_point_at_itself_or_at_a_company_that_is_not_active() -> None:
    check_merge_target(2, 1, CompanyStatus.ACTIVE, None)
    with pytest.raises(MergeCycleError, match="into itself"):
        check_merge_target(1, 1, CompanyStatus.ACTIVE, None)
    with pytest.raises(MergeCycleError, match="merged into 2"):
        check_merge_target(2, 1, CompanyStatus.MERGED, 2)  # 1 is merged into 2: 2 -> 1 would close a loop
    with pytest.raises(MergeCycleError, match="deleted"):
        check_merge_target(2, 1, CompanyStatus.DELETED, None)
