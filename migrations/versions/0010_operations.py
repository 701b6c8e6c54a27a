"""provider circuits, circuit transitions and slot requests

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 15:16:20.938945
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('circuit_transitions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tag', sa.String(length=100), nullable=False),
    sa.Column('from_state', sa.String(length=16), nullable=False),
    sa.Column('to_state', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_circuit_transitions'))
    )
    with op.batch_alter_table('circuit_transitions', schema=None) as batch_op:
        batch_op.create_index('ix_circuit_transitions_tag_at', ['tag', 'at'], unique=False)

    op.create_table('provider_circuits',
    sa.Column('tag', sa.String(length=100), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('consecutive_failures', sa.Integer(), nullable=False),
    sa.Column('opened_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('outage_started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('probes_sent', sa.Integer(), nullable=False),
    sa.Column('opened_count', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('tag', name=op.f('pk_provider_circuits'))
    )
    op.create_table('slot_requests',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tag', sa.String(length=100), nullable=False),
    sa.Column('flow_run_id', sa.String(length=64), nullable=False),
    sa.Column('bulk_action_id', sa.Integer(), nullable=True),
    sa.Column('priority', sa.Integer(), nullable=False),
    sa.Column('wanted', sa.Integer(), nullable=False),
    sa.Column('held', sa.Integer(), nullable=False),
    sa.Column('waiting_since', sa.DateTime(timezone=True), nullable=True),
    sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['bulk_action_id'], ['bulk_actions.id'], name=op.f('fk_slot_requests_bulk_action_id_bulk_actions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_slot_requests')),
    sa.UniqueConstraint('tag', 'flow_run_id', name='uq_slot_requests_tag_flow_run')
    )
    with op.batch_alter_table('slot_requests', schema=None) as batch_op:
        batch_op.create_index('ix_slot_requests_tag_waiting', ['tag', 'waiting_since'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('slot_requests', schema=None) as batch_op:
        batch_op.drop_index('ix_slot_requests_tag_waiting')

    op.drop_table('slot_requests')
    op.drop_table('provider_circuits')
    with op.batch_alter_table('circuit_transitions', schema=None) as batch_op:
        batch_op.drop_index('ix_circuit_transitions_tag_at')

    op.drop_table('circuit_transitions')
