"""The shard rows of a bulk action spread over several flow runs (``bulk_action_shards``).

Functions take a ``Session`` and never commit, as in ``core.store``.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core.schema import BulkActionShard, BulkActionStatus, utcnow
from core.store import OutcomeCounts


def ensure_shards(session: Session, bulk_action_id: int, shards: int) -> list[BulkActionShard]:
    """The action's shard rows, created on first use; a rerun must ask for the same number of shards."""
    rows = shard_rows(session, bulk_action_id)
    if rows and len(rows) != shards:
        raise ValueError(f"bulk action {bulk_action_id} runs in {len(rows)} shards, not {shards}")
    if not rows:
        rows = [BulkActionShard(bulk_action_id=bulk_action_id, shard_index=i, shards=shards) for i in range(shards)]
        session.add_all(rows)
        session.flush()
    return rows


def shard_rows(session: Session, bulk_action_id: int) -> list[BulkActionShard]:
    return list(
        session.scalars(
            select(BulkActionShard)
            .where(BulkActionShard.bulk_action_id == bulk_action_id)
            .order_by(BulkActionShard.shard_index)
        )
    )


def get_shard(session: Session, bulk_action_id: int, shard_index: int) -> BulkActionShard | None:
    return session.get(BulkActionShard, (bulk_action_id, shard_index))


def find_shard_by_flow_run(session: Session, flow_run_id: str) -> BulkActionShard | None:
    return session.scalars(select(BulkActionShard).where(BulkActionShard.flow_run_id == flow_run_id)).first()


def set_shard_status(
    session: Session,
    bulk_action_id: int,
    shard_index: int,
    status: BulkActionStatus,
    *,
    reason: str | None = None,
    counts: OutcomeCounts | None = None,
    flow_run_id: str | None = None,
    provider_calls: int | None = None,
    batches_from_checkpoint: int | None = None,
) -> None:
    values: dict[str, object] = {"status": status, "status_reason": reason, "updated_at": utcnow()}
    if provider_calls is not None:
        values["provider_calls"] = provider_calls
    if batches_from_checkpoint is not None:
        values["batches_from_checkpoint"] = batches_from_checkpoint
    if counts is not None:
        values.update(total=counts.total, succeeded=counts.succeeded, skipped=counts.skipped, failed=counts.failed)
    if flow_run_id is not None:
        values["flow_run_id"] = flow_run_id
    session.execute(
        update(BulkActionShard)
        .where(BulkActionShard.bulk_action_id == bulk_action_id, BulkActionShard.shard_index == shard_index)
        .values(**values)
    )


def store_shard_progress(session: Session, bulk_action_id: int, shard_index: int, counts: OutcomeCounts) -> None:
    session.execute(
        update(BulkActionShard)
        .where(BulkActionShard.bulk_action_id == bulk_action_id, BulkActionShard.shard_index == shard_index)
        .values(
            total=counts.total,
            succeeded=counts.succeeded,
            skipped=counts.skipped,
            failed=counts.failed,
            updated_at=utcnow(),
        )
    )
