"""Candidate pairs for the dedup sweep: which pairs of companies are worth comparing at all.

Comparing every pair is quadratic: 100,000 companies are 5 billion pairs.  Like Splink's blocking rules and
dedupe's blocking predicates, the sweep compares only the union of pairs that some cheap rule brings together,
and scores those (:mod:`core.dedup_decision`).  Three rules, each recorded in a pair's ``sources`` bits:

* :data:`BY_VECTOR`: the vectors' near neighbours at cosine >= ``min_cosine``.  Up to ``exact_limit`` companies
  by exact matmul in row blocks (:func:`exact_vector_pairs`, every pair above the cut, no approximation); above it
  from an approximate nearest-neighbour index (:mod:`core.dedup_ann`: faiss, range search at the same cut).
* :data:`BY_DOMAIN`: the same registrable domain (:func:`pairs_sharing_key`).
* :data:`BY_NAME`: names within one edit of each other (a letter left out, added, changed, or two swapped):
  names that share a *deletion variant* (the name, or the name less one character; SymSpell's trick), so
  ``nowak cnc`` meets ``noawk cnc`` without comparing every pair of names (:func:`name_variant_pairs`).

A key that more than ``max_block`` companies share (a hosting domain not in ``SHARED_DOMAINS``, a one-word
name like ``bakery``) brings no pairs: it says nothing about any one pair and would make the sweep quadratic again.
Such keys are counted in :attr:`CandidatePairs.skipped_keys` so the caller can report them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from core.dedup_ann import ann_pairs
from core.dedup_signals import CompanySignals

__all__ = [
    "BY_DOMAIN",
    "BY_NAME",
    "BY_VECTOR",
    "CandidatePairs",
    "candidate_pairs",
    "exact_vector_pairs",
    "name_variant_pairs",
    "pairs_sharing_key",
    "vector_pairs",
]

Rows = npt.NDArray[np.int64]
F32 = npt.NDArray[np.float32]

BY_VECTOR: Final = 1
BY_DOMAIN: Final = 2
BY_NAME: Final = 4

#: above this many companies the vector pairs come from the ANN index instead of the exact matmul
EXACT_LIMIT: Final = 50_000
#: a key shared by more companies than this brings no pairs
MAX_BLOCK: Final = 50
#: names shorter than this are blocked on exact equality only: their one-edit neighbourhoods are crowded
MIN_VARIANT_LENGTH: Final = 5
#: the exact matmul's block holds at most this many similarities (64 MB of float32)
_BLOCK_CELLS: Final = 1 << 24


@dataclass(frozen=True, slots=True)
class CandidatePairs:
    """Distinct pairs of rows, ``left < right``, with the blocking rules that found each (``sources`` bits)."""

    left: Rows
    right: Rows
    sources: npt.NDArray[np.uint8]
    skipped_keys: int = 0

    def __len__(self) -> int:
        return len(self.left)


def _upper(left: Rows, right: Rows) -> tuple[Rows, Rows]:
    """Pairs as ``(min, max)``, self-pairs dropped."""
    keep = left != right
    left, right = left[keep], right[keep]
    return np.minimum(left, right), np.maximum(left, right)


def exact_vector_pairs(vectors: F32, min_cosine: float, block_rows: int | None = None) -> tuple[Rows, Rows]:
    """Every pair of rows whose cosine is >= ``min_cosine``: ``vectors @ vectors.T`` in row blocks, upper triangle.

    Rows are unit-norm.  Memory is ``block_rows * n`` floats at a time (by default at most 64 MB); time grows with
    n²: 1.3 s for 20,000 MiniLM vectors, 8 s for 50,000 on 2 cores (the faiss index: 0.6 s and 1.8 s).
    """
    n = len(vectors)
    if block_rows is None:
        block_rows = max(64, min(2_048, _BLOCK_CELLS // max(n, 1)))
    lefts: list[Rows] = []
    rights: list[Rows] = []
    threshold = np.float32(min_cosine)
    for start in range(0, n, block_rows):
        stop = min(start + block_rows, n)
        sims = vectors[start:stop] @ vectors[start:].T  # columns from ``start``: the upper triangle and the diagonal
        rows, cols = np.nonzero(sims >= threshold)
        keep = cols > rows  # column ``c`` is row ``start + c``; row ``r`` is ``start + r``
        lefts.append(rows[keep].astype(np.int64) + start)
        rights.append(cols[keep].astype(np.int64) + start)
    if not lefts:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return np.concatenate(lefts), np.concatenate(rights)


def vector_pairs(vectors: F32, min_cosine: float, *, exact_limit: int = EXACT_LIMIT) -> tuple[Rows, Rows]:
    """Pairs of rows at cosine >= ``min_cosine``: exact up to ``exact_limit`` rows, else from the ANN index."""
    if len(vectors) <= exact_limit:
        return exact_vector_pairs(vectors, min_cosine)
    return ann_pairs(vectors, min_cosine)


def pairs_sharing_key(rows: Rows, keys: Rows, max_block: int = MAX_BLOCK) -> tuple[Rows, Rows, int]:
    """Pairs of rows that share a key, ``(left, right, keys skipped)``.

    Entry ``i`` says row ``rows[i]`` has key ``keys[i]``: a row may have several keys, and the same key twice;
    negative keys are none.  A key held by more than ``max_block`` rows is skipped.  A pair of rows that shares
    two keys comes out twice (:func:`candidate_pairs` makes pairs distinct).
    """
    keep = keys >= 0
    rows, keys = rows[keep], keys[keep]
    if len(keys) == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64), 0
    order = np.lexsort((rows, keys))
    rows, keys = rows[order], keys[order]
    fresh = np.r_[True, (keys[1:] != keys[:-1]) | (rows[1:] != rows[:-1])]  # a row's key once
    rows, keys = rows[fresh], keys[fresh]
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    sizes = np.diff(np.r_[starts, len(keys)])
    twos = starts[sizes == 2]  # most shared keys are shared by two rows: no Python loop for those
    lefts: list[Rows] = [rows[twos]]
    rights: list[Rows] = [rows[twos + 1]]
    crowd = (sizes > 2) & (sizes <= max_block)
    for start, size in zip(starts[crowd].tolist(), sizes[crowd].tolist(), strict=True):
        members = rows[start : start + size]
        a, b = np.triu_indices(size, 1)
        lefts.append(members[a])
        rights.append(members[b])
    left, right = _upper(np.concatenate(lefts), np.concatenate(rights))
    return left, right, int(np.count_nonzero(sizes > max_block))


def _variant_hashes(names: Sequence[str], min_length: int) -> Iterator[int]:
    """Per name, in order: its hash, then (names of ``min_length`` or more) the hash of each one-deletion variant."""
    for name in names:
        yield hash(name)
        if len(name) >= min_length:
            for i in range(len(name)):
                yield hash(name[:i] + name[i + 1 :])


def name_variant_pairs(
    names: Sequence[str], max_block: int = MAX_BLOCK, min_length: int = MIN_VARIANT_LENGTH
) -> tuple[Rows, Rows, int]:
    """Pairs of rows whose names are equal or one edit apart, ``(left, right, keys skipped)``.

    Two names one insertion, deletion, substitution or adjacent swap apart share a deletion variant (the name
    itself, or the name less one character); names shorter than ``min_length`` only meet their equals, and empty
    names meet nothing.  Variants are keyed by ``hash()``: a (64-bit, vanishingly rare) collision only adds a
    candidate pair, which the decision then judges on its merits.
    """
    counts = np.fromiter(
        (0 if not name else len(name) + 1 if len(name) >= min_length else 1 for name in names),
        dtype=np.int64,
        count=len(names),
    )
    present = [name for name in names if name]
    keys = np.fromiter(_variant_hashes(present, min_length), dtype=np.int64, count=int(counts.sum()))
    rows = np.repeat(np.arange(len(names), dtype=np.int64), counts)
    keys &= np.int64(0x7FFF_FFFF_FFFF_FFFF)  # non-negative: negative keys mean "none"
    return pairs_sharing_key(rows, keys, max_block)


def candidate_pairs(
    vectors: F32,
    signals: CompanySignals,
    min_cosine: float,
    *,
    exact_limit: int = EXACT_LIMIT,
    max_block: int = MAX_BLOCK,
) -> CandidatePairs:
    """The distinct pairs that the vector, domain and name rules bring together (see the module docstring)."""
    n = len(signals)
    if len(vectors) != n:
        raise ValueError(f"{len(vectors)} vectors for {n} companies: one row per company, in the same order")
    if n < 2:
        return CandidatePairs(np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.uint8))
    found: list[tuple[Rows, Rows, int]] = []
    left, right = vector_pairs(vectors, min_cosine, exact_limit=exact_limit)
    found.append((left, right, BY_VECTOR))
    all_rows = np.arange(n, dtype=np.int64)
    left, right, skipped_domains = pairs_sharing_key(all_rows, signals.domains, max_block)
    found.append((left, right, BY_DOMAIN))
    left, right, skipped_names = name_variant_pairs(signals.names, max_block)
    found.append((left, right, BY_NAME))

    codes = np.concatenate([a * n + b for a, b, _ in found])
    bits = np.concatenate([np.full(len(a), bit, dtype=np.uint8) for a, _, bit in found])
    unique, inverse = np.unique(codes, return_inverse=True)
    sources = np.zeros(len(unique), dtype=np.uint8)
    np.bitwise_or.at(sources, inverse, bits)
    return CandidatePairs(
        left=unique // n, right=unique % n, sources=sources, skipped_keys=skipped_domains + skipped_names
    )
