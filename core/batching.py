"""How a bulk action's companies are cut into batches (task runs), provider calls and shards.

Arithmetic only: the companies themselves stay in the database.  An action's outcome rows carry contiguous
positions ``0 .. total-1`` in selection order, so batch ``i`` is the position range ``[i*B, (i+1)*B)`` where
``B = call_size * calls_per_batch``.  A batch names its range, never its ids: a million companies are 5,000
small task inputs, and a rerun rebuilds exactly the same batches (and so hits their checkpoints) from the
numbers stored with the action.  A shard is a contiguous range of batches.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BatchPlan:
    """``total`` companies in batches of ``calls_per_batch`` provider calls of ``call_size`` companies."""

    total: int
    call_size: int
    calls_per_batch: int = 1

    def __post_init__(self) -> None:
        if self.total < 0 or self.call_size < 1 or self.calls_per_batch < 1:
            raise ValueError(f"invalid batch plan {self!r}")

    @property
    def batch_companies(self) -> int:
        return self.call_size * self.calls_per_batch

    @property
    def batches(self) -> int:
        return -(-self.total // self.batch_companies)

    def positions(self, batch_index: int) -> tuple[int, int]:
        """The half-open position range of one batch."""
        start = batch_index * self.batch_companies
        return start, min(start + self.batch_companies, self.total)

    def shard_batches(self, shard_index: int, shards: int) -> range:
        """The batches of one shard: ``shards`` contiguous ranges as even as whole batches allow."""
        if not 0 <= shard_index < shards:
            raise ValueError(f"shard {shard_index} is not one of {shards}")
        return range(self.batches * shard_index // shards, self.batches * (shard_index + 1) // shards)

    def shard_positions(self, shard_index: int, shards: int) -> tuple[int, int]:
        batches = self.shard_batches(shard_index, shards)
        if not batches:
            return 0, 0
        return self.positions(batches.start)[0], self.positions(batches.stop - 1)[1]


ROUNDS_PER_SLOT = 4
"""A small action is cut so every provider slot gets at least this many batches (see ``balanced_calls_per_batch``)."""


def balanced_calls_per_batch(total: int, call_size: int, configured: int, slots: int) -> int:
    """The provider block's ``calls_per_batch``, lowered for an action too small to keep every slot busy.

    With big batches a small action has few of them, and its last round leaves slots idle while one or two
    batches finish (2,000 embeddings in batches of 200 over 4 slots: rounds of 4, 4 and 2).  Cutting the action
    into at least ``ROUNDS_PER_SLOT`` batches per slot shortens that tail to a quarter of a batch's time per
    slot; a large action keeps the configured size, so a million companies still make few task runs.
    """
    calls = -(-total // call_size)
    return max(1, min(configured, -(-calls // (max(1, slots) * ROUNDS_PER_SLOT))))


def calls_of(items: list[int], call_size: int) -> list[list[int]]:
    """``items`` cut into provider calls of ``call_size``."""
    return [items[i : i + call_size] for i in range(0, len(items), call_size)]
