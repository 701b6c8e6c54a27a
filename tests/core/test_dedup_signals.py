"""The dedup sweep's signals: comparison names, domains, countries, and the per-pair comparisons."""

from __future__ import annotations

import numpy as np
import pytest

from core.dedup_signals import (
    AGREE,
    DIFFER,
    UNKNOWN,
    agreement,
    company_signals,
    comparison_name,
    name_scores,
    pair_cosines,
    signals_from_keys,
)
from core.name_keys import name_key


def _cmp(name: str) -> str:
    return comparison_name(name_key(name))


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Moreau & Morel SARL", "Moreau et Morel SARL"),
        ("Braun und Becker GmbH", "Braun & Becker GmbH"),
        ("González & Hernández S.L.", "González y Hernández S.L."),
        ("Warta Dairy Sp. z o.o.", "Warta Dairy Sp.z o.o."),
        ("Acme GmbH & Co. KG", "Acme GmbH u. Co. KG"),
        ("Acme B.V.", "ACME BV"),
        ("Briex S.L.", "Briex S.L.U."),
        ("Acme GmbH", "Acme UG"),
    ],
)
def test_spellings_of_one_name_compare_equal(a: str, b: str) -> None:
    assert _cmp(a) == _cmp(b)


def test_a_comparison_name_keeps_its_words_and_is_never_empty() -> None:
    assert _cmp("Bank of America") == "bank of america"
    assert _cmp("Holding") == "holding"
    assert _cmp("And Co") == "and"  # a legal form is stripped only when a word remains before it
    assert _cmp("Smith & Sons Ltd") == "smith sons"
    assert _cmp("Vos Bouw B.V.") != _cmp("Bos Bouw B.V.")


def test_signals_from_raw_fields_use_the_import_keys() -> None:
    signals = company_signals(
        ["Acme B.V.", "ACME BV", "Other Ltd", "Nameless"],
        ["https://www.acme.nl", "http://acme.nl/", "https://www.linkedin.com/company/other", None],
        ["Netherlands", "NL", "United Kingdom", None],
    )
    assert signals.names[:2] == ("acme", "acme")
    assert signals.domain(0) == signals.domain(1) == "acme.nl"
    assert signals.domain(2) is None  # a shared host identifies no company
    assert signals.domain(3) is None
    assert signals.country(0) == signals.country(1) == "NL"
    assert signals.country(3) is None
    rows = np.array([0, 0, 0], dtype=np.int64), np.array([1, 2, 3], dtype=np.int64)
    assert agreement(signals.domains, *rows).tolist() == [AGREE, UNKNOWN, UNKNOWN]
    assert agreement(signals.countries, *rows).tolist() == [AGREE, DIFFER, UNKNOWN]


def test_signals_need_one_entry_per_company() -> None:
    with pytest.raises(ValueError, match="unequal lengths"):
        signals_from_keys(["a", "b"], [None], [None, None])


def test_name_scores_are_fuzz_ratio_over_100() -> None:
    signals = signals_from_keys(
        ["van den berg logistics", "van den berg logistcs", "van den berg logistics", "jansen bakery", ""],
        [None] * 5,
        [None] * 5,
    )
    left = np.array([0, 0, 0, 0], dtype=np.int64)
    right = np.array([1, 2, 3, 4], dtype=np.int64)
    scores = name_scores(signals, left, right)
    assert scores.dtype == np.float32
    assert scores[1] == 1.0
    assert 0.95 < scores[0] < 1.0  # one letter left out
    assert scores[2] < 0.6
    assert scores[3] == 0.0  # an empty name is like nothing
    # "company" strips as a legal form, "copany" does not: the name keys still compare
    keyed = signals_from_keys(["lange beer company", "lange beer copany"], [None, None], [None, None])
    assert keyed.names == ("lange beer", "lange beer copany")
    assert name_scores(keyed, left[:1], right[:1])[0] > 0.95
    assert name_scores(signals, left[:0], right[:0]).shape == (0,)


def test_pair_cosines_are_row_dot_products_in_chunks() -> None:
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(50, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    left = rng.integers(0, 50, 200)
    right = rng.integers(0, 50, 200)
    before = vectors.copy()
    expected = np.einsum("ij,ij->i", vectors[left], vectors[right])
    np.testing.assert_allclose(pair_cosines(vectors, left, right, chunk=7), expected, rtol=1e-5)
    np.testing.assert_array_equal(vectors, before)  # the input is not written to
