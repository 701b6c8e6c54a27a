"""What the dedup sweep compares two companies on, and the comparisons themselves.

Per company, computed once and row-aligned with the one model's vector matrix (:class:`CompanySignals`):

* the **name** as compared: :func:`core.name_keys.name_key` (casefolded, accents and punctuation folded, ``&`` =
  ``and``, one trailing legal form stripped with cleanco's terms), then :func:`comparison_name`, which also drops
  the connective between two words in any of the languages the data speaks (``Braun und Becker`` = ``Braun &
  Becker``) and what is left of trailing legal forms: written with their spaces moved (``Sp.z o.o.`` for ``Sp. z
  o.o.``), a second one (``GmbH u. Co. KG``), or one cleanco lacks (``S.L.U.``, ``UG``);
* the **domain**: the registrable domain that identifies the company (:func:`core.company_domains.company_domain`,
  so shared hosts such as linkedin.com give none);
* the **country**, as ISO alpha-2 where recognisable (:func:`core.dedup_keys.match_country`).

Per pair, vectorised over arrays of row indices: the names' similarity (:func:`name_scores`: rapidfuzz's
``fuzz.ratio`` as 0-1, the better of the comparison names' and the name keys'), the vectors' cosine
(:func:`pair_cosines`), and whether the domains and the countries agree (:func:`agreement`: agree, differ, or
unknown when either side has none).
Nothing here knows about a database or Prefect: names, websites and countries in, arrays out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
from cleanco.termdata import terms_by_country, terms_by_type
from rapidfuzz import fuzz
from rapidfuzz.process import cpdist

from core.dedup_keys import keys_of, match_country
from core.name_keys import name_key

__all__ = [
    "AGREE",
    "DIFFER",
    "UNKNOWN",
    "CompanySignals",
    "agreement",
    "comparison_name",
    "company_signals",
    "name_scores",
    "pair_cosines",
    "signals_from_keys",
]

Rows = npt.NDArray[np.int64]
F32 = npt.NDArray[np.float32]
I8 = npt.NDArray[np.int8]

#: :func:`agreement` of a pair: both known and equal, both known and different, either unknown
AGREE: Final = 1
DIFFER: Final = 0
UNKNOWN: Final = -1

#: the word for "and" between two names (``Moreau et Morel``), in the languages of the companies' countries;
#: ``name_key`` already folds ``&`` to ``and``
_CONNECTIVES: Final = frozenset({"and", "en", "et", "und", "u", "y", "e", "i", "och", "og", "ja", "a"})


#: legal forms cleanco's list lacks (Spain's sole-shareholder S.L.U., Germany's UG haftungsbeschränkt)
_MORE_LEGAL_FORMS: Final = ("S.L.U.", "S.A.U.", "UG")


def _spaceless_legal_forms() -> frozenset[str]:
    """cleanco's legal forms and a few more, folded like names, without spaces (``spzoo``, ``gmbhandcokg``)."""
    forms: set[str] = {name_key(term).replace(" ", "") for term in _MORE_LEGAL_FORMS}
    for group in (terms_by_type, terms_by_country):
        for terms in group.values():
            forms.update(name_key(term).replace(" ", "") for term in terms)
    forms.discard("")
    return frozenset(forms)


_LEGAL_FORMS: Final = _spaceless_legal_forms()
#: the most words a legal form spans (``gmbh and co kg``): how far back from the end to look
_LEGAL_FORM_WORDS: Final = 5


def comparison_name(key: str) -> str:
    """A name key as the sweep compares it: connectives between words dropped, trailing legal forms stripped.

    ``key`` is a :func:`core.name_keys.name_key` (which strips one legal form, if cleanco knows it as written).  A
    connective is dropped only between two other words; legal forms are stripped from the end while words remain
    before them, so no name compares as empty.  ``moreau et morel`` and ``moreau and morel`` are ``moreau morel``;
    ``warta dairy spz oo`` (``Sp.z o.o.``) is ``warta dairy``, ``acme gmbh u co`` (``GmbH u. Co. KG``) is ``acme``.
    """
    words = key.split()
    if len(words) > 2:
        words = [words[0], *(w for w in words[1:-1] if w not in _CONNECTIVES), words[-1]]
    stripped = True
    while stripped and len(words) > 1:
        stripped = False
        for span in range(min(_LEGAL_FORM_WORDS, len(words) - 1), 0, -1):
            if "".join(words[-span:]) in _LEGAL_FORMS:
                words = words[:-span]
                stripped = True
                break
    return " ".join(words)


@dataclass(frozen=True, slots=True)
class CompanySignals:
    """The compared fields of ``n`` companies, row ``i`` being row ``i`` of the sweep's vector matrix.

    ``names`` are comparison names (:func:`comparison_name`), ``keys`` the name keys they come from.
    ``domains`` and ``countries`` are integer codes (equal code = equal value; -1 = none), so pairs compare as
    arrays; ``domain_names`` and ``country_names`` map a code back to its value for a reviewer.
    """

    names: tuple[str, ...]
    keys: tuple[str, ...]
    domains: npt.NDArray[np.int64]
    countries: npt.NDArray[np.int64]
    domain_names: tuple[str, ...]
    country_names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.names)

    def domain(self, row: int) -> str | None:
        code = int(self.domains[row])
        return None if code < 0 else self.domain_names[code]

    def country(self, row: int) -> str | None:
        code = int(self.countries[row])
        return None if code < 0 else self.country_names[code]


def _codes(values: Sequence[str | None]) -> tuple[npt.NDArray[np.int64], tuple[str, ...]]:
    index: dict[str, int] = {}
    codes = np.fromiter(
        (-1 if not value else index.setdefault(value, len(index)) for value in values),
        dtype=np.int64,
        count=len(values),
    )
    return codes, tuple(index)


def signals_from_keys(
    name_keys: Sequence[str | None], domains: Sequence[str | None], countries: Sequence[str | None]
) -> CompanySignals:
    """Signals from the keys the database stores: ``companies.name_key``, ``.domain`` and ``.country``."""
    if not len(name_keys) == len(domains) == len(countries):
        raise ValueError(f"unequal lengths: {len(name_keys)} names, {len(domains)} domains, {len(countries)} countries")
    domain_codes, domain_names = _codes(domains)
    country_codes, country_names = _codes([match_country(c) for c in countries])
    keys = tuple(key or "" for key in name_keys)
    return CompanySignals(
        names=tuple(comparison_name(key) for key in keys),
        keys=keys,
        domains=domain_codes,
        countries=country_codes,
        domain_names=domain_names,
        country_names=country_names,
    )


def company_signals(
    names: Sequence[str | None], websites: Sequence[str | None], countries: Sequence[str | None]
) -> CompanySignals:
    """Signals from companies' raw fields: the name key and the domain as an import computes them."""
    keys = [keys_of(name, website) for name, website in zip(names, websites, strict=True)]
    return signals_from_keys([k["name_key"] for k in keys], [k["domain"] for k in keys], countries)


def name_scores(signals: CompanySignals, left: Rows, right: Rows) -> F32:
    """The names' similarity of each pair ``(left[k], right[k])``, 0-1 (1.0 = equal names).

    ``fuzz.ratio`` / 100 (the normalised Indel similarity: a one-letter typo in a 20-letter name scores ~0.95, two
    letters swapped ~0.9) of the comparison names, or of the name keys where that is higher: the keys rescue a
    word that strips as a legal form on one side only, ``Lange Beer Company`` / ``Lange Beer Copany`` (``company``
    is a legal form, ``copany`` is not), ``Briico Apps`` / ``Briico Aps`` (``ApS`` is one).  An empty name scores
    0 against anything.
    """
    if len(left) == 0:
        return np.empty(0, dtype=np.float32)
    lefts, rights = left.tolist(), right.tolist()
    best = np.zeros(len(lefts), dtype=np.float32)
    for names in (signals.names, signals.keys):
        scores = cpdist([names[i] for i in lefts], [names[j] for j in rights], scorer=fuzz.ratio)
        np.maximum(best, np.asarray(scores, dtype=np.float32), out=best)
    return best / np.float32(100.0)


def pair_cosines(vectors: F32, left: Rows, right: Rows, chunk: int = 65_536) -> F32:
    """The cosine of each pair's two rows of ``vectors`` (unit-norm rows: the dot product), in chunks."""
    out = np.empty(len(left), dtype=np.float32)
    for start in range(0, len(left), chunk):
        a = vectors[left[start : start + chunk]]
        a *= vectors[right[start : start + chunk]]
        out[start : start + chunk] = a.sum(axis=1)
    return out


def agreement(codes: npt.NDArray[np.int64], left: Rows, right: Rows) -> I8:
    """Per pair: :data:`AGREE`, :data:`DIFFER`, or :data:`UNKNOWN` when either side has no value."""
    a, b = codes[left], codes[right]
    out = np.where(a == b, AGREE, DIFFER).astype(np.int8)
    out[(a < 0) | (b < 0)] = UNKNOWN
    return out
