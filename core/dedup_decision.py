"""The pair decision of the dedup sweep: which candidate pairs are the same company, and why.

Each candidate pair (:mod:`core.dedup_candidates`) is compared on four signals (:mod:`core.dedup_signals`): the
vectors' cosine, the names' similarity, whether the registrable domains agree, whether the countries agree.  A
pair is a duplicate when its countries do not differ and one of two rules holds (:data:`RULES`, in the order a
pair's evidence names the first that holds):

``domain+name``
    the same registrable domain, and names at least ``name_threshold`` alike.  Catches the typo a vector misses:
    a one-letter slip moves MiniLM's vector to cosine ~0.9 (as low as 0.6 for a short text), not the domain.
``name+vector``
    names at least ``name_threshold`` alike, cosine at least ``vector_threshold``, and the domains do not differ
    (the same, or either unknown).  The product's cosine rule, made to agree with the name: similar descriptions
    of two different companies no longer pass.

Two different domains veto ``name+vector``: ``Highland Family Practice`` (highland-family-practice.co.uk) and
``Highland Medical Practice`` (highland-medical-practice.co.uk) are two practices whose descriptions meet at cosine
0.98 and whose names score 0.86.  Two different countries veto both rules: a group's national companies share
names, sites and descriptions, and are separate legal entities.  These are the Fellegi-Sunter comparisons that
Splink and dedupe weigh with learned weights, written instead as two rules with two thresholds a reviewer can read
and move: ``vector_threshold`` (0.95, the product's) and ``name_threshold`` (0.85: two letters swapped in a
9-letter name score 0.89).  Every accepted pair has names that agree.  A third rule, the same domain and cosine >=
``vector_threshold`` whatever the names (a rename), found no duplicate the two rules miss on the synthetic data and
would merge a group's companies that share one site: it is left out (``bench/dedup_quality.py --variants``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from core.dedup_candidates import (
    BY_DOMAIN,
    BY_NAME,
    BY_VECTOR,
    EXACT_LIMIT,
    MAX_BLOCK,
    CandidatePairs,
    candidate_pairs,
)
from core.dedup_signals import AGREE, DIFFER, UNKNOWN, CompanySignals, agreement, name_scores, pair_cosines

__all__ = [
    "DEFAULT_NAME_THRESHOLD",
    "DEFAULT_VECTOR_THRESHOLD",
    "RULES",
    "DedupParams",
    "PairEvidence",
    "ScoredPairs",
    "decide",
    "find_duplicates",
    "score_pairs",
]

Rows = npt.NDArray[np.int64]
F32 = npt.NDArray[np.float32]
I8 = npt.NDArray[np.int8]

DEFAULT_VECTOR_THRESHOLD: Final = 0.95
DEFAULT_NAME_THRESHOLD: Final = 0.85
#: the rules, by their code in :attr:`ScoredPairs.rule` (-1: no rule holds)
RULES: Final = ("domain+name", "name+vector")
_SOURCES: Final = ((BY_VECTOR, "vector"), (BY_DOMAIN, "domain"), (BY_NAME, "name"))


@dataclass(frozen=True, slots=True)
class DedupParams:
    """The sweep's parameters.  The two thresholds decide; the rest only bound the work of finding candidates."""

    vector_threshold: float = DEFAULT_VECTOR_THRESHOLD
    name_threshold: float = DEFAULT_NAME_THRESHOLD
    exact_limit: int = EXACT_LIMIT
    max_block: int = MAX_BLOCK

    def __post_init__(self) -> None:
        for field in ("vector_threshold", "name_threshold"):
            value = getattr(self, field)
            if not 0.0 < value <= 1.0:
                raise ValueError(f"{field} must be in (0, 1], got {value}")
        for field in ("exact_limit", "max_block"):
            if getattr(self, field) < 1:
                raise ValueError(f"{field} must be >= 1, got {getattr(self, field)}")


@dataclass(frozen=True, slots=True)
class PairEvidence:
    """One pair and why it was judged a duplicate, for a reviewer (rows of the sweep's input, ``left < right``)."""

    left: int
    right: int
    cosine: float
    name_score: float
    same_domain: bool | None  # None: either company has no domain
    same_country: bool | None  # None: either company has no country
    rule: str  # the first of RULES that holds
    found_by: tuple[str, ...]  # the blocking rules that brought the pair: "vector", "domain", "name"


def _tristate(value: int) -> bool | None:
    return None if value == UNKNOWN else value == AGREE


@dataclass(frozen=True, slots=True)
class ScoredPairs:
    """Candidate pairs with their signals and the rule that accepted each (``rule`` -1: not a duplicate)."""

    left: Rows
    right: Rows
    sources: npt.NDArray[np.uint8]
    cosine: F32
    name_score: F32
    same_domain: I8
    same_country: I8
    rule: I8

    def __len__(self) -> int:
        return len(self.left)

    def accepted(self) -> ScoredPairs:
        """Only the duplicates."""
        keep = self.rule >= 0
        return ScoredPairs(
            left=self.left[keep],
            right=self.right[keep],
            sources=self.sources[keep],
            cosine=self.cosine[keep],
            name_score=self.name_score[keep],
            same_domain=self.same_domain[keep],
            same_country=self.same_country[keep],
            rule=self.rule[keep],
        )

    def evidence(self) -> list[PairEvidence]:
        """The accepted pairs as records a reviewer reads (signals rounded to 4 places)."""
        out: list[PairEvidence] = []
        for k in np.flatnonzero(self.rule >= 0).tolist():
            bits = int(self.sources[k])
            out.append(
                PairEvidence(
                    left=int(self.left[k]),
                    right=int(self.right[k]),
                    cosine=round(float(self.cosine[k]), 4),
                    name_score=round(float(self.name_score[k]), 4),
                    same_domain=_tristate(int(self.same_domain[k])),
                    same_country=_tristate(int(self.same_country[k])),
                    rule=RULES[int(self.rule[k])],
                    found_by=tuple(name for bit, name in _SOURCES if bits & bit),
                )
            )
        return out


def score_pairs(vectors: F32, signals: CompanySignals, candidates: CandidatePairs) -> ScoredPairs:
    """The four signals of every candidate pair (no decision yet: ``rule`` is all -1)."""
    left, right = candidates.left, candidates.right
    return ScoredPairs(
        left=left,
        right=right,
        sources=candidates.sources,
        cosine=pair_cosines(vectors, left, right),
        name_score=name_scores(signals, left, right),
        same_domain=agreement(signals.domains, left, right),
        same_country=agreement(signals.countries, left, right),
        rule=np.full(len(left), -1, dtype=np.int8),
    )


def decide(scored: ScoredPairs, params: DedupParams) -> ScoredPairs:
    """``scored`` with ``rule`` set: the first of :data:`RULES` that holds for each pair, -1 where none does."""
    # float32 signals against float32 thresholds: a cosine printed as 0.95 is not lost to float64 rounding
    names_alike = scored.name_score >= np.float32(params.name_threshold)
    vectors_alike = scored.cosine >= np.float32(params.vector_threshold)
    same_domain = scored.same_domain == AGREE
    allowed = scored.same_country != DIFFER
    holds = (
        allowed & same_domain & names_alike,
        allowed & names_alike & vectors_alike & (scored.same_domain != DIFFER),
    )
    rule = np.full(len(scored), -1, dtype=np.int8)
    for code in range(len(holds) - 1, -1, -1):  # last to first, so the first rule that holds is the one kept
        rule[holds[code]] = code
    return ScoredPairs(
        left=scored.left,
        right=scored.right,
        sources=scored.sources,
        cosine=scored.cosine,
        name_score=scored.name_score,
        same_domain=scored.same_domain,
        same_country=scored.same_country,
        rule=rule,
    )


def find_duplicates(vectors: F32, signals: CompanySignals, params: DedupParams | None = None) -> ScoredPairs:
    """The duplicate pairs among ``n`` companies: candidates, their signals, the decision; accepted pairs only.

    ``vectors`` is one model's ``(n, d)`` matrix, row ``i`` being company ``i`` of ``signals`` (vectors of two
    models are never compared: pass one model's).  Rows are normalised here, so any length works; a zero row (no
    text) has cosine 0 with everything.
    """
    params = params or DedupParams()
    matrix = _unit_rows(vectors)
    candidates = candidate_pairs(
        matrix,
        signals,
        params.vector_threshold,
        exact_limit=params.exact_limit,
        max_block=params.max_block,
    )
    return decide(score_pairs(matrix, signals, candidates), params).accepted()


def _unit_rows(vectors: npt.ArrayLike) -> F32:
    matrix = np.ascontiguousarray(vectors, dtype=np.float32)
    if matrix.ndim != 2:
        raise ValueError(f"vectors must be a 2-D (companies, dimensions) matrix, got shape {matrix.shape}")
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    if np.allclose(norms, 1.0, atol=1e-4):
        return matrix
    out: F32 = matrix / np.maximum(norms, np.float32(1e-12))
    return out
