"""Clusters of the dedup sweep: connected components, the winner rule, the evidence per pair."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.dedup_clusters import MemberFacts, build_clusters, choose_winner, connected_components
from core.dedup_decision import PairEvidence

OLD = datetime(2020, 1, 1, tzinfo=UTC)
NEW = datetime(2024, 1, 1, tzinfo=UTC)


def _facts(
    company_id: int, filled: int = 5, enriched: bool = False, scored: bool = False, created: datetime | None = NEW
) -> MemberFacts:
    return MemberFacts(company_id, filled, enriched, scored, created)


def _pair(left: int, right: int, rule: str = "domain+name") -> PairEvidence:
    return PairEvidence(left, right, 0.9, 0.95, True, True, rule, ("domain",))


def test_connected_components_follow_chains_and_ignore_order() -> None:
    assert connected_components([(5, 9), (1, 2), (9, 7), (2, 3)]) == [[1, 2, 3], [5, 7, 9]]
    assert connected_components([(2, 3), (9, 7), (1, 2), (5, 9)]) == [[1, 2, 3], [5, 7, 9]]
    assert connected_components([]) == []


@pytest.mark.parametrize(
    ("members", "winner", "reason"),
    [
        ([_facts(1, filled=5), _facts(2, filled=7)], 2, "most complete"),
        ([_facts(1, enriched=False, scored=True, created=OLD), _facts(2, enriched=True)], 2, "enriched"),
        ([_facts(1, created=OLD), _facts(2, scored=True)], 2, "scored"),
        ([_facts(1), _facts(2, created=OLD)], 2, "oldest"),
        ([_facts(1, created=None), _facts(2)], 2, "oldest"),  # an unknown date counts as newest
        ([_facts(3), _facts(2)], 2, "lowest id"),
        ([_facts(4)], 4, "lowest id"),
    ],
)
def test_the_winner_rule_criterion_by_criterion(members: list[MemberFacts], winner: int, reason: str) -> None:
    chosen, why = choose_winner(members)
    assert (chosen.company_id, why) == (winner, reason)
    chosen, why = choose_winner(list(reversed(members)))
    assert (chosen.company_id, why) == (winner, reason)


def test_a_cluster_needs_members() -> None:
    with pytest.raises(ValueError):
        choose_winner([])


def test_clusters_name_companies_with_the_winner_first_and_their_evidence() -> None:
    facts = [_facts(100), _facts(101, filled=9), _facts(102), _facts(103), _facts(104), _facts(105)]
    pairs = [_pair(0, 1), _pair(1, 2, "name+vector"), _pair(4, 5)]
    first, second = build_clusters(pairs, facts)
    assert first.members == (101, 100, 102) and first.winner == 101 and first.losers == (100, 102)
    assert first.winner_reason == "most complete"
    assert [(p.left, p.right, p.rule) for p in first.pairs] == [(100, 101, "domain+name"), (101, 102, "name+vector")]
    assert not first.fully_linked  # 100 and 102 are linked only through 101
    assert second.members == (104, 105) and second.winner_reason == "lowest id" and second.fully_linked
    assert second.pairs[0].cosine == 0.9 and second.pairs[0].same_domain is True


def test_clusters_need_one_row_per_company() -> None:
    with pytest.raises(ValueError, match="twice"):
        build_clusters([_pair(0, 1)], [_facts(7), _facts(7)])
