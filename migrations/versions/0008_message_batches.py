"""message batches of LLM reclassify (submissions and staged results), history kinds, outcome batch links

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 12:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'message_batches',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('bulk_action_id', sa.Integer(), nullable=False),
        sa.Column('provider_batch_id', sa.String(length=100), nullable=True),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('request_count', sa.Integer(), nullable=False),
        sa.Column('request_counts', sa.JSON(), nullable=True),
        sa.Column('reservation_id', sa.Integer(), nullable=True),
        sa.Column('orphan_of', sa.Integer(), nullable=True),
        sa.Column('note', sa.Text(), nullable=True),
        sa.Column('requested_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('submitted_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('staged_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['bulk_action_id'], ['bulk_actions.id'], name=op.f('fk_message_batches_bulk_action_id_bulk_actions'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_message_batches')),
        sa.UniqueConstraint('provider_batch_id', name=op.f('uq_message_batches_provider_batch_id')),
    )
    op.create_index('ix_message_batches_action_status', 'message_batches', ['bulk_action_id', 'status'], unique=False)
    op.create_table(
        'message_batch_results',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('bulk_action_id', sa.Integer(), nullable=False),
        sa.Column('message_batch_id', sa.Integer(), nullable=False),
        sa.Column('company_id', sa.Integer(), nullable=False),
        sa.Column('result_type', sa.String(length=16), nullable=False),
        sa.Column('payload', sa.JSON(), nullable=False),
        sa.Column('staged_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['bulk_action_id'], ['bulk_actions.id'], name=op.f('fk_message_batch_results_bulk_action_id_bulk_actions'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['message_batch_id'], ['message_batches.id'], name=op.f('fk_message_batch_results_message_batch_id_message_batches'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_message_batch_results')),
        sa.UniqueConstraint('message_batch_id', 'company_id', name='uq_message_batch_results_batch_company'),
    )
    op.create_index('ix_message_batch_results_action', 'message_batch_results', ['bulk_action_id', 'id'], unique=False)
    with op.batch_alter_table('bulk_action_outcomes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('message_batch_id', sa.Integer(), nullable=True))
    with op.batch_alter_table('company_history', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sa.String(length=16), server_default='change', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('company_history', schema=None) as batch_op:
        batch_op.drop_column('kind')
    with op.batch_alter_table('bulk_action_outcomes', schema=None) as batch_op:
        batch_op.drop_column('message_batch_id')
    op.drop_index('ix_message_batch_results_action', table_name='message_batch_results')
    op.drop_table('message_batch_results')
    op.drop_index('ix_message_batches_action_status', table_name='message_batches')
    op.drop_table('message_batches')
