"""Deterministic 384-d embeddings with a little meaning: a normalised sum of hashed word vectors.

Identical texts give identical vectors and texts that share words are closer than unrelated ones, which is
what dedup and search tests need; real semantics (synonyms) are out of scope. Each pooling gets its own vector
space, as in the real model, whose ``mean`` and ``cls`` vectors are not comparable.
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache

import numpy as np
import numpy.typing as npt

DIMENSIONS = 384
_WORD = re.compile(r"\w+", re.UNICODE)

Vector = npt.NDArray[np.float64]


@lru_cache(maxsize=65_536)
def _word_vector(word: str, space: str) -> Vector:
    seed = int.from_bytes(hashlib.blake2b(f"{space}\x1f{word}".encode(), digest_size=8).digest(), "big")
    vector = np.random.default_rng(seed).standard_normal(DIMENSIONS)
    vector.setflags(write=False)  # cached and shared: must never be modified in place
    return vector


def embed(text: str, space: str = "mean") -> list[float]:
    """Unit-norm vector of ``text`` in ``space`` (the pooling name)."""
    words = _WORD.findall(text.lower()) or [""]
    total = np.sum([_word_vector(word, space) for word in words], axis=0)
    norm = float(np.linalg.norm(total))
    unit = total / norm if norm > 0 else _word_vector("", space)
    return [float(x) for x in unit]


def embed_many(texts: list[str], space: str = "mean") -> list[list[float]]:
    return [embed(text, space) for text in texts]
