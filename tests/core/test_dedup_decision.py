"""The dedup sweep's pair decision: which signals make a duplicate, and the evidence a reviewer reads."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest

from core.dedup_decision import DedupParams, find_duplicates
from core.dedup_signals import signals_from_keys


def _pairs_at(cosines: list[float]) -> npt.NDArray[np.float32]:
    """Rows 2k and 2k+1 at cosine ``cosines[k]``; rows of different pairs at cosine 0."""
    vectors = np.zeros((2 * len(cosines), 2 * len(cosines)), dtype=np.float32)
    for k, c in enumerate(cosines):
        vectors[2 * k, 2 * k] = 1.0
        vectors[2 * k + 1, 2 * k] = c
        vectors[2 * k + 1, 2 * k + 1] = math.sqrt(1.0 - c * c)
    return vectors


# (name key a, name key b, domain a, domain b, country a, country b, cosine, the rule expected or None)
CASES = [
    # a typo in the name: the vector drifts, the domain does not
    ("smit bouw", "smit buow", "smit-bouw.nl", "smit-bouw.nl", "NL", "NL", 0.87, "domain+name"),
    # the product's method, confirmed by the name, without websites
    ("highland dairy", "highland dairy", None, None, "GB", "GB", 0.97, "name+vector"),
    # one website known: no conflict
    ("highland dairy", "highland dairy", "highland-dairy.co.uk", None, "GB", None, 0.97, "name+vector"),
    # similar descriptions of two companies: the names differ
    ("leclercq engineering", "dupont technologies", None, None, "BE", "BE", 0.98, None),
    # near-identical names and descriptions, two different websites: two companies
    ("kwekerij smit", "kwekerij smits", "kwekerij-smit.nl", "smits.nl", "NL", "NL", 0.97, None),
    # the same site, name and text in two countries: a group's national companies
    ("acme logistics", "acme logistics", "acme.com", "acme.com", "DE", "FR", 0.99, None),
    # the same site, a different name, the same text: not enough (a name must agree)
    ("acme holding", "acme logistics", "acme.com", "acme.com", "NL", "NL", 0.99, None),
    # a typo and a drifted vector, nothing else: not enough
    ("smit bouw", "smit buow", None, None, "NL", "NL", 0.87, None),
]


def _run(params: DedupParams | None = None) -> dict[int, str]:
    signals = signals_from_keys(
        [x for case in CASES for x in case[0:2]],
        [x for case in CASES for x in case[2:4]],
        [x for case in CASES for x in case[4:6]],
    )
    accepted = find_duplicates(_pairs_at([case[6] for case in CASES]), signals, params)
    return {e.left // 2: e.rule for e in accepted.evidence() if e.left % 2 == 0 and e.right == e.left + 1}


def test_each_rule_and_veto() -> None:
    assert _run() == {k: case[7] for k, case in enumerate(CASES) if case[7] is not None}


def test_the_thresholds_are_the_reviewers_levers() -> None:
    assert 0 not in _run(DedupParams(name_threshold=0.95))  # 'smit bouw' ~ 'smit buow' scores 0.89
    assert 1 not in _run(DedupParams(vector_threshold=0.98))
    assert 1 in _run(DedupParams(vector_threshold=0.97))  # inclusive, in float32


def test_evidence_says_why() -> None:
    signals = signals_from_keys(["smit bouw", "smit buow"], ["smit-bouw.nl", "smit-bouw.nl"], ["NL", None])
    (evidence,) = find_duplicates(_pairs_at([0.87]), signals).evidence()
    assert (evidence.left, evidence.right) == (0, 1)
    assert evidence.cosine == pytest.approx(0.87, abs=1e-4)
    assert evidence.name_score == pytest.approx(0.8889, abs=1e-4)
    assert evidence.same_domain is True and evidence.same_country is None
    assert evidence.rule == "domain+name"
    assert evidence.found_by == ("domain", "name")


def test_vectors_of_any_length_are_normalised_and_must_be_a_matrix() -> None:
    signals = signals_from_keys(["acme", "acme", "other"], [None] * 3, [None] * 3)
    vectors = np.array([[3.0, 0.0], [6.0, 0.1], [0.0, 0.0]], dtype=np.float32)  # a zero row: no text
    (evidence,) = find_duplicates(vectors, signals).evidence()
    assert (evidence.left, evidence.right, evidence.rule) == (0, 1, "name+vector")
    with pytest.raises(ValueError, match="2-D"):
        find_duplicates(np.zeros(3, dtype=np.float32), signals)


@pytest.mark.parametrize(
    "bad",
    [
        {"vector_threshold": 0.0},
        {"vector_threshold": 1.5},
        {"name_threshold": -0.1},
        {"exact_limit": 0},
        {"max_block": 0},
    ],
)
def test_params_are_checked(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        DedupParams(**bad)  # type: ignore[arg-type]
