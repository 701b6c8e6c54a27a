"""How an action is cut into batches: positions, shards, and the balancing of small actions."""

from __future__ import annotations

import pytest

from core.batching import ROUNDS_PER_SLOT, BatchPlan, balanced_calls_per_batch


@pytest.mark.parametrize(
    ("total", "call_size", "configured", "slots", "expected"),
    [
        (2_000, 10, 20, 4, 13),  # 200 calls over 4 slots: at least 16 batches, 13 calls each
        (1_000_000, 10, 20, 4, 20),  # a large action keeps the block's size: 5,000 task runs for a million
        (25, 10, 20, 4, 1),  # 3 calls: one per task run, every slot busy
        (0, 10, 20, 4, 1),
        (5_000, 5, 1, 16, 1),  # a paid provider's single call per task run is never raised
    ],
)
def test_small_actions_are_cut_finer_and_large_ones_keep_the_configured_size(
    total: int, call_size: int, configured: int, slots: int, expected: int
) -> None:
    chosen = balanced_calls_per_batch(total, call_size, configured, slots)
    assert chosen == expected
    plan = BatchPlan(total, call_size, chosen)
    if chosen < configured and total:
        assert plan.batches >= min(-(-total // call_size), slots * ROUNDS_PER_SLOT)


def test_batches_cover_every_position_once_and_shards_split_whole_batches() -> None:
    plan = BatchPlan(total=1_003, call_size=10, calls_per_batch=3)
    covered = [p for i in range(plan.batches) for p in range(*plan.positions(i))]
    assert covered == list(range(1_003))
    shards = [plan.shard_batches(s, 3) for s in range(3)]
    assert [b for r in shards for b in r] == list(range(plan.batches))
    assert plan.shard_positions(2, 3)[1] == 1_003
