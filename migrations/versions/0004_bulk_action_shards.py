"""bulk action shards: one row per shard of an action spread over several flow runs

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 08:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_STATUS = sa.Enum(
    'pending', 'running', 'paused', 'completed', 'failed', 'cancelled',
    name='bulkactionstatus', native_enum=False, length=32,
)


def upgrade() -> None:
    op.create_table(
        'bulk_action_shards',
        sa.Column('bulk_action_id', sa.Integer(), nullable=False),
        sa.Column('shard_index', sa.Integer(), nullable=False),
        sa.Column('shards', sa.Integer(), nullable=False),
        sa.Column('status', _STATUS, nullable=False),
        sa.Column('status_reason', sa.Text(), nullable=True),
        sa.Column('flow_run_id', sa.String(length=64), nullable=True),
        sa.Column('total', sa.Integer(), nullable=False),
        sa.Column('succeeded', sa.Integer(), nullable=False),
        sa.Column('skipped', sa.Integer(), nullable=False),
        sa.Column('failed', sa.Integer(), nullable=False),
        sa.Column('provider_calls', sa.Integer(), nullable=False),
        sa.Column('batches_from_checkpoint', sa.Integer(), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ['bulk_action_id'], ['bulk_actions.id'],
            name=op.f('fk_bulk_action_shards_bulk_action_id_bulk_actions'), ondelete='CASCADE',
        ),
        sa.PrimaryKeyConstraint('bulk_action_id', 'shard_index', name=op.f('pk_bulk_action_shards')),
    )


def downgrade() -> None:
    op.drop_table('bulk_action_shards')
