"""Clusters of duplicates: the connected components of the accepted pairs, each with a winner and its evidence.

A cluster is a connected component of the graph whose edges are the accepted pairs (union-find), as Splink's
``cluster_pairwise_predictions_at_threshold`` and the first step of dedupe's clustering do: if A is B and B is C,
all three are one company.  A component can be *chained* (A~B and B~C accepted, A~C not): its pairs show which
links hold it together, and :attr:`DuplicateCluster.fully_linked` says whether every two members were judged
alike directly, so a reviewer knows which clusters to read first.

The winner (the company that keeps its id at merge time) is chosen by this rule, criterion by criterion until
one tells the members apart:

1. the most complete: the most filled fields;
2. enriched (has enrichment data) before not;
3. scored (has scores) before not;
4. the oldest (earliest ``created_at``; an unknown date counts as newest);
5. the lowest company id, so the choice never depends on input order.

:attr:`DuplicateCluster.winner_reason` names the criterion that decided.  The facts are inputs
(:class:`MemberFacts`): this module reads no database.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from core.dedup_decision import PairEvidence

__all__ = ["WINNER_RULE", "DuplicateCluster", "MemberFacts", "build_clusters", "choose_winner", "connected_components"]

WINNER_RULE: Final = ("most complete", "enriched", "scored", "oldest", "lowest id")


@dataclass(frozen=True, slots=True)
class MemberFacts:
    """What the winner rule reads of one company."""

    company_id: int
    filled_fields: int  # how many of the company's fields hold a value
    enriched: bool
    scored: bool
    created_at: datetime | None


@dataclass(frozen=True, slots=True)
class DuplicateCluster:
    """One cluster: its members' company ids (winner first, then ascending), the winner, and why, and the pairs."""

    members: tuple[int, ...]
    winner: int
    winner_reason: str  # the WINNER_RULE criterion that decided
    pairs: tuple[PairEvidence, ...]  # the accepted pairs inside the cluster, as company ids

    @property
    def losers(self) -> tuple[int, ...]:
        return self.members[1:]

    @property
    def fully_linked(self) -> bool:
        """Every two members are an accepted pair themselves (not only linked through another member)."""
        size = len(self.members)
        return len({(p.left, p.right) for p in self.pairs}) == size * (size - 1) // 2


def connected_components(pairs: Sequence[tuple[int, int]]) -> list[list[int]]:
    """The connected components of the graph with these edges (union-find), each sorted, ordered by first member.

    Only nodes that appear in a pair are returned: a company without an accepted pair is no cluster.
    """
    parent: dict[int, int] = {}

    def find(node: int) -> int:
        root = node
        while parent[root] != root:
            root = parent[root]
        while parent[node] != root:  # path compression
            parent[node], node = root, parent[node]
        return root

    for a, b in pairs:
        parent.setdefault(a, a)
        parent.setdefault(b, b)
        root_a, root_b = find(a), find(b)
        if root_a != root_b:
            parent[max(root_a, root_b)] = min(root_a, root_b)  # the smaller node is the root: deterministic
    groups: dict[int, list[int]] = {}
    for node in parent:
        groups.setdefault(find(node), []).append(node)
    return sorted((sorted(members) for members in groups.values()), key=lambda members: members[0])


def _rank(facts: MemberFacts) -> tuple[int, int, int, float, int]:
    """Sort key, smallest first: the WINNER_RULE criteria in order."""
    created = facts.created_at.timestamp() if facts.created_at is not None else float("inf")
    return (-facts.filled_fields, -int(facts.enriched), -int(facts.scored), created, facts.company_id)


def choose_winner(members: Sequence[MemberFacts]) -> tuple[MemberFacts, str]:
    """The winner among ``members`` by the module's rule, and the criterion that decided."""
    if not members:
        raise ValueError("a cluster has at least one member")
    ranked = sorted(members, key=_rank)
    if len(ranked) == 1:
        return ranked[0], WINNER_RULE[-1]
    best, runner_up = _rank(ranked[0]), _rank(ranked[1])
    decided = next(i for i, (x, y) in enumerate(zip(best, runner_up, strict=True)) if x != y)
    return ranked[0], WINNER_RULE[decided]


def build_clusters(pairs: Sequence[PairEvidence], facts: Sequence[MemberFacts]) -> list[DuplicateCluster]:
    """Clusters from accepted pairs over rows of ``facts`` (``pair.left``/``right`` index ``facts``).

    Ordered by their smallest company id.  The pairs of the result name company ids, not rows.
    """
    ids = [f.company_id for f in facts]
    if len(set(ids)) != len(ids):
        raise ValueError("facts name a company twice: one row per company")
    by_root: dict[int, list[PairEvidence]] = {}
    components = connected_components([(p.left, p.right) for p in pairs])
    root_of: Mapping[int, int] = {row: component[0] for component in components for row in component}
    for pair in pairs:
        a, b = ids[pair.left], ids[pair.right]
        by_id = dataclasses.replace(pair, left=min(a, b), right=max(a, b))
        by_root.setdefault(root_of[pair.left], []).append(by_id)
    clusters: list[DuplicateCluster] = []
    for component in components:
        members = [facts[row] for row in component]
        winner, reason = choose_winner(members)
        others = sorted(m.company_id for m in members if m.company_id != winner.company_id)
        edges = sorted(by_root[component[0]], key=lambda p: (p.left, p.right))
        clusters.append(
            DuplicateCluster(
                members=(winner.company_id, *others), winner=winner.company_id, winner_reason=reason, pairs=tuple(edges)
            )
        )
    clusters.sort(key=lambda c: min(c.members))
    return clusters
