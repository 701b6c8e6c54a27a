"""Name keys: the company name as duplicate detection compares it (:func:`name_key`).

:func:`name_key` folds what varies between spellings of one name: case, accents, punctuation, ``&``/``and``
and a trailing legal form (``Acme B.V.``, ``ACME BV`` and ``Acmé, b.v.`` are all ``acme``).  :func:`_fold` is
also how :mod:`core.company_codes` folds country names.

Speed
    ``cleanco.basename`` costs ~50 µs a call: instead cleanco's own term list is folded like names are and
    compiled into one trie-shaped regex anchored at the end of the folded name (tests check the result against
    ``cleanco.basename``).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from typing import Any, Final

from cleanco.non_nfkd_map import NON_NFKD_MAP
from cleanco.termdata import terms_by_country, terms_by_type

from core.schema import Company

__all__ = ["name_key"]


def _name_key_column_length() -> int:
    length = getattr(Company.__table__.c["name_key"].type, "length", None)
    if not isinstance(length, int):  # pragma: no cover - a schema change this module must follow
        raise TypeError("companies.name_key has no length limit")
    return length


#: folding can lengthen a name (``&`` → ``and``, ``ß`` → ``ss``): the key is cut to its column
_NAME_KEY_MAX: Final = _name_key_column_length()

#: runs of anything but letters and digits (Unicode-aware; "_" included): one space each
_SEPARATORS: Final = re.compile(r"[\W_]+")
#: apostrophes and dots outside ASCII, removed like their ASCII twins
_UNICODE_DROP: Final = {ord(c): None for c in "\u2019\u2018\u02bc\u00b4\u2024\uff0e"}
_NON_NFKD: Final = str.maketrans(NON_NFKD_MAP)
#: the Combining Diacritical Marks block: what NFKD splits off accented Latin letters
_LATIN_MARKS: Final = re.compile("[\u0300-\u036f]+")


def _fold(text: str) -> str:
    """Caseless, accentless words separated by single spaces: ``Acmé, B.V. & Co`` → ``acme bv and co``.

    Dots and apostrophes vanish (``B.V.`` = ``BV``, ``McDonald's`` = ``McDonalds``), ``&`` is ``and``, every other
    run of punctuation, symbols and whitespace is one space.  Written for speed: plain ``str`` methods settle the
    common case and the regex only runs when punctuation other than dots and apostrophes is left.
    """
    text = text.casefold()
    if not text.isascii():
        text = unicodedata.normalize("NFKD", text)
        if not text.isascii():
            text = _LATIN_MARKS.sub("", text)  # the usual case: Latin letters with accents
            if not text.isascii():
                text = "".join(c for c in text if not unicodedata.combining(c))
                text = text.translate(_NON_NFKD).translate(_UNICODE_DROP).casefold()
    if "&" in text:
        text = text.replace("&", " and ")
    if "." in text:
        text = text.replace(".", "")
    if "'" in text:
        text = text.replace("'", "")
    words = text.split()
    if not "".join(words).isalnum():  # str.isalnum agrees with the regex's \w, bar "_"
        words = _SEPARATORS.sub(" ", text).split()
    return " ".join(words)


def _legal_terms() -> set[str]:
    """cleanco's legal forms (all types and countries), folded the way names are."""
    terms: set[str] = set()
    for group in (terms_by_type, terms_by_country):
        for values in group.values():
            terms.update(_fold(term) for term in values)
    terms.discard("")
    return terms


def _trie_pattern(words: Iterable[str]) -> str:
    """A regex matching exactly ``words``, shaped as a trie so a match attempt costs a few steps, not one per word."""
    root: dict[str, Any] = {}
    for word in words:
        node = root
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}

    def build(node: dict[str, Any]) -> str:
        branches = [re.escape(char) + build(child) for char, child in sorted(node.items()) if char]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        return f"(?:{body})?" if "" in node else body  # optional: a word ends here, longer ones go on

    return build(root)


#: one legal form at the end of a folded name, after at least one other word (so a name never folds to nothing);
#: ``search`` finds the leftmost start, i.e. the longest form (``gmbh and co kg`` before ``kg``)
_LEGAL_FORM: Final = re.compile(" (?:" + _trie_pattern(_legal_terms()) + ")$")


def name_key(name: str) -> str:
    """The name as duplicate detection compares it: :func:`_fold` without one trailing legal form.

    ``Acme B.V.``, ``ACME BV``, ``Acme, b.v.`` and ``Acmé B.V.`` are all ``acme``; ``Smith & Sons Ltd`` and ``Smith
    and Sons Limited`` are ``smith and sons``.  The legal forms are cleanco's; like ``cleanco.basename`` one form
    is removed from the end only (``Acme Holding B.V.`` is ``acme holding``).  A name that is only a legal-form
    word keeps it (``Holding``, ``Company``), and a name without letters or digits keys on its casefolded self.
    The key is cut to the ``name_key`` column's length (folding can make it longer than the name).
    """
    key = _fold(name)
    if " " in key:
        match = _LEGAL_FORM.search(key)
        if match is not None:
            key = key[: match.start()]
    if not key:  # only punctuation: still a key that tells such names apart
        key = " ".join(name.casefold().split())
    return key if len(key) <= _NAME_KEY_MAX else key[:_NAME_KEY_MAX].rstrip()
