"""spend: budget accounts, reservations and the ledger; the pause request; the tier of a score

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 09:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    with op.batch_alter_table('bulk_actions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('pause_requested', sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table('company_scores', schema=None) as batch_op:
        batch_op.add_column(sa.Column('tier', sa.Integer(), nullable=True))
    op.create_table(
        'spend_accounts',
        sa.Column('key', sa.String(length=300), nullable=False),
        sa.Column('limit_nanousd', sa.BigInteger(), nullable=True),
        sa.Column('spent_nanousd', sa.BigInteger(), nullable=False),
        sa.Column('reserved_nanousd', sa.BigInteger(), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('key', name=op.f('pk_spend_accounts')),
    )
    op.create_table(
        'spend_reservations',
        sa.Column('id', _ID, nullable=False),
        sa.Column('bulk_action_id', sa.Integer(), nullable=True),
        sa.Column('flow_run_id', sa.String(length=64), nullable=True),
        sa.Column('accounts', sa.JSON(), nullable=False),
        sa.Column('amount_nanousd', sa.BigInteger(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ['bulk_action_id'], ['bulk_actions.id'],
            name=op.f('fk_spend_reservations_bulk_action_id_bulk_actions'), ondelete='CASCADE',
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_spend_reservations')),
    )
    op.create_index(
        'ix_spend_reservations_bulk_action', 'spend_reservations', ['bulk_action_id', 'flow_run_id'], unique=False
    )
    op.create_table(
        'spend_ledger',
        sa.Column('id', _ID, nullable=False),
        sa.Column('bulk_action_id', sa.Integer(), nullable=True),
        sa.Column('company_id', sa.Integer(), nullable=True),
        sa.Column('action', sa.String(length=64), nullable=False),
        sa.Column('provider', sa.String(length=64), nullable=False),
        sa.Column('model', sa.String(length=200), nullable=False),
        sa.Column('created_by', sa.String(length=200), nullable=False),
        sa.Column('calls', sa.Integer(), nullable=False),
        sa.Column('input_tokens', sa.Integer(), nullable=False),
        sa.Column('output_tokens', sa.Integer(), nullable=False),
        sa.Column('input_bytes', sa.Integer(), nullable=False),
        sa.Column('cost_nanousd', sa.BigInteger(), nullable=False),
        sa.Column('unpriced', sa.Boolean(), nullable=False),
        sa.Column('tier', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ['bulk_action_id'], ['bulk_actions.id'],
            name=op.f('fk_spend_ledger_bulk_action_id_bulk_actions'), ondelete='SET NULL',
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_spend_ledger')),
    )
    op.create_index('ix_spend_ledger_bulk_action', 'spend_ledger', ['bulk_action_id'], unique=False)
    op.create_index('ix_spend_ledger_company', 'spend_ledger', ['company_id'], unique=False)
    op.create_index('ix_spend_ledger_provider_time', 'spend_ledger', ['provider', 'created_at'], unique=False)
    op.create_index('ix_spend_ledger_creator_time', 'spend_ledger', ['created_by', 'created_at'], unique=False)


def downgrade() -> None:
    op.drop_table('spend_ledger')
    op.drop_table('spend_reservations')
    op.drop_table('spend_accounts')
    with op.batch_alter_table('company_scores', schema=None) as batch_op:
        batch_op.drop_column('tier')
    with op.batch_alter_table('bulk_actions', schema=None) as batch_op:
        batch_op.drop_column('pause_requested')
