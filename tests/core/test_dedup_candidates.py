"""Candidate pairs of the dedup sweep: exact and ANN vector neighbours, domain blocks, one-edit name blocks."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import numpy.typing as npt
import pytest

from core.dedup_candidates import (
    BY_DOMAIN,
    BY_NAME,
    BY_VECTOR,
    candidate_pairs,
    exact_vector_pairs,
    name_variant_pairs,
    pairs_sharing_key,
    vector_pairs,
)
from core.dedup_signals import signals_from_keys


def _planted(n: int, dup_every: int, seed: int = 5, dim: int = 32) -> npt.NDArray[np.float32]:
    """Random unit rows where every ``dup_every``-th row is a slightly perturbed copy of the row before."""
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    for row in range(dup_every, n, dup_every):
        vectors[row] = vectors[row - 1] + rng.normal(scale=0.05, size=dim).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def _brute(vectors: npt.NDArray[np.float32], t: float) -> set[tuple[int, int]]:
    sims = vectors @ vectors.T
    return {(a, b) for a, b in combinations(range(len(vectors)), 2) if sims[a, b] >= np.float32(t)}


def test_exact_vector_pairs_are_every_pair_above_the_cut_across_blocks() -> None:
    vectors = _planted(300, 7)
    left, right = exact_vector_pairs(vectors, 0.9, block_rows=64)
    found = set(zip(left.tolist(), right.tolist(), strict=True))
    assert found == _brute(vectors, 0.9)
    assert len(found) == 300 // 7
    assert all(a < b for a, b in found)


def test_the_ann_index_finds_the_near_duplicates_the_exact_matmul_finds() -> None:
    vectors = _planted(3_000, 10)
    exact = set(zip(*(side.tolist() for side in exact_vector_pairs(vectors, 0.9)), strict=True))
    left, right = vector_pairs(vectors, 0.9, exact_limit=1_000)  # above the limit: the ANN index
    approximate = set(zip(left.tolist(), right.tolist(), strict=True))
    assert approximate <= exact
    assert len(approximate) >= 0.99 * len(exact)


def test_pairs_sharing_a_key_skip_crowded_keys() -> None:
    rows = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 3, 4, 4], dtype=np.int64)
    keys = np.array([5, 5, 9, 9, 9, -1, 7, 7, 7, 1, 1, 1], dtype=np.int64)
    left, right, skipped = pairs_sharing_key(rows, keys, max_block=3)
    pairs = sorted(zip(left.tolist(), right.tolist(), strict=True))
    assert pairs == [(0, 1), (2, 3), (2, 4), (3, 4), (3, 4), (6, 7), (6, 8), (7, 8)]  # key 1: rows 3 and 4 again
    assert skipped == 0
    left, right, skipped = pairs_sharing_key(rows, keys, max_block=2)
    assert sorted(zip(left.tolist(), right.tolist(), strict=True)) == [(0, 1), (3, 4)]
    assert skipped == 2  # keys 9 and 7


@pytest.mark.parametrize(
    "typo",
    ["nowak cnc metal", "nwak cnc metal", "noawk cnc metal", "nowak cnc metall", "nowak cnd metal", "nowakcnc metal"],
)
def test_names_one_edit_apart_meet(typo: str) -> None:
    left, right, _ = name_variant_pairs(["nowak cnc metal", "something else", typo])
    assert (0, 2) in set(zip(left.tolist(), right.tolist(), strict=True))


def test_names_two_edits_apart_short_names_and_empty_names() -> None:
    left, right, _ = name_variant_pairs(["nowak cnc metal", "nwak cnc metl", "abcd", "abce", "abcd", "", ""])
    assert set(zip(left.tolist(), right.tolist(), strict=True)) == {(2, 4)}  # short names: only equal ones


def test_candidate_pairs_union_the_rules_and_say_which_found_each() -> None:
    vectors = np.eye(6, dtype=np.float32)
    vectors[1] = vectors[0]  # rows 0 and 1: the same vector
    signals = signals_from_keys(
        ["alpha trading", "omega works", "delta foods", "delta fods", "kappa", "lambda"],
        ["alpha.nl", None, None, None, "shared.nl", "shared.nl"],
        ["NL"] * 6,
    )
    cands = candidate_pairs(vectors, signals, 0.95)
    got = dict(zip(zip(cands.left.tolist(), cands.right.tolist(), strict=True), cands.sources.tolist(), strict=True))
    assert got == {(0, 1): BY_VECTOR, (2, 3): BY_NAME, (4, 5): BY_DOMAIN}
    with pytest.raises(ValueError, match="one row per company"):
        candidate_pairs(vectors[:5], signals, 0.95)
