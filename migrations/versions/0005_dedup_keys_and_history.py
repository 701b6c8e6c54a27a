"""duplicate-detection keys on companies (registrable domain, name key) and the per-field change history

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 06:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Existing rows keep NULL keys: the import fills them in pages before it compares (core.dedup_keys).
    with op.batch_alter_table('companies', schema=None) as batch_op:
        batch_op.add_column(sa.Column('domain', sa.String(length=253), nullable=True))
        batch_op.add_column(sa.Column('name_key', sa.String(length=300), nullable=True))
        batch_op.create_index('ix_companies_domain', ['domain'], unique=False)
        batch_op.create_index('ix_companies_name_key', ['name_key', 'country'], unique=False)
    op.create_table(
        'company_history',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('company_id', sa.Integer(), nullable=False),
        sa.Column('field', sa.String(length=64), nullable=False),
        sa.Column('old_value', sa.Text(), nullable=True),
        sa.Column('new_value', sa.Text(), nullable=True),
        sa.Column('bulk_action_id', sa.Integer(), nullable=True),
        sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ['company_id'], ['companies.id'],
            name=op.f('fk_company_history_company_id_companies'), ondelete='CASCADE',
        ),
        sa.ForeignKeyConstraint(
            ['bulk_action_id'], ['bulk_actions.id'],
            name=op.f('fk_company_history_bulk_action_id_bulk_actions'), ondelete='SET NULL',
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_company_history')),
    )
    op.create_index('ix_company_history_company', 'company_history', ['company_id', 'id'], unique=False)
    op.create_index('ix_company_history_bulk_action', 'company_history', ['bulk_action_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_company_history_bulk_action', table_name='company_history')
    op.drop_index('ix_company_history_company', table_name='company_history')
    op.drop_table('company_history')
    with op.batch_alter_table('companies', schema=None) as batch_op:
        batch_op.drop_index('ix_companies_name_key')
        batch_op.drop_index('ix_companies_domain')
        batch_op.drop_column('name_key')
        batch_op.drop_column('domain')
