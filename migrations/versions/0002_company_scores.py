"""company scores (LLM adoption): one row per company, criterion, provider and model

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('company_scores',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('company_id', sa.Integer(), nullable=False),
    sa.Column('bulk_action_id', sa.Integer(), nullable=True),
    sa.Column('criterion', sa.String(length=64), nullable=False),
    sa.Column('level', sa.String(length=16), nullable=True),
    sa.Column('score', sa.Integer(), nullable=False),
    sa.Column('reasoning', sa.Text(), nullable=True),
    sa.Column('provider', sa.String(length=64), nullable=False),
    sa.Column('model', sa.String(length=200), nullable=False),
    sa.Column('prompt_tokens', sa.Integer(), nullable=False),
    sa.Column('completion_tokens', sa.Integer(), nullable=False),
    sa.Column('input_sha256', sa.String(length=64), nullable=False),
    sa.Column('scored_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['company_id'], ['companies.id'], name=op.f('fk_company_scores_company_id_companies'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['bulk_action_id'], ['bulk_actions.id'], name=op.f('fk_company_scores_bulk_action_id_bulk_actions'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_company_scores')),
    sa.UniqueConstraint('company_id', 'criterion', 'provider', 'model', name='uq_company_scores_company_criterion_provider_model')
    )
    with op.batch_alter_table('company_scores', schema=None) as batch_op:
        batch_op.create_index('ix_company_scores_criterion_score', ['criterion', 'score'], unique=False)
        batch_op.create_index('ix_company_scores_bulk_action', ['bulk_action_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('company_scores', schema=None) as batch_op:
        batch_op.drop_index('ix_company_scores_bulk_action')
        batch_op.drop_index('ix_company_scores_criterion_score')

    op.drop_table('company_scores')
