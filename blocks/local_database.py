"""The "provider" of actions that only write the company database (``update_status``, later rollback).

Such an action calls no outside service, but it runs on the same engine as the paid ones (checkpointed
batches, progress, cancellation), and the engine holds a provider's ``tag:<tag>`` concurrency slots for every
batch in flight.  This block names that tag: ``database-writes`` caps how many write batches of every such
action run at once across all workers, which is the limit that matters for SQLite's single writer and for a
PostgreSQL primary shared with the team's own applications.
"""

from __future__ import annotations

from typing import ClassVar

from prefect.blocks.core import Block
from pydantic import Field

from blocks.batching import calls_per_batch_field

#: database-only work is cheap per company: 10 chunks of 50 companies per task run
DATABASE_CALLS_PER_BATCH = 10


class LocalDatabaseWrites(Block):
    """Bulk writes to the company database itself: no outside provider, no cost."""

    _block_type_name: ClassVar[str] = "Local Database Writes"
    _block_type_slug: ClassVar[str] = "local-database-writes"
    _description: ClassVar[str] = "Actions that only change the company database (update_status, rollback)."

    concurrency_tag: str = Field(default="database-writes", description="Prefect concurrency tag.")
    calls_per_batch: int = calls_per_batch_field(DATABASE_CALLS_PER_BATCH)

    def get_client(self) -> None:
        """Nothing to build: the handler writes through the database block (kept for the provider interface)."""
        return None
