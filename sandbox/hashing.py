"""Process-independent hashing: every deterministic choice of the sandbox (outputs, truths, noise) starts here.

Python's ``hash()`` is salted per process, so two runs of a benchmark would disagree; these helpers give the same
value in every process and on every machine.
"""

from __future__ import annotations

import hashlib

_SPAN = float(2**64)


def stable_hash(*parts: str) -> int:
    """A 64-bit hash of ``parts`` (joined with a separator no text contains)."""
    digest = hashlib.blake2b("\x1f".join(parts).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def unit_interval(*parts: str) -> float:
    """A uniform draw in ``[0, 1)`` fixed by ``parts``: a seeded coin for deterministic probabilities."""
    return stable_hash(*parts) / _SPAN
