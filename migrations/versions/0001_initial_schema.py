"""companies, embeddings, bulk actions, outcomes, dead jobs

Revision ID: 0001
Revises: -
Create Date: 2026-11-23 03:29:27.805687
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    
    op.create_table('bulk_actions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('status', sa.Enum('pending', 'running', 'paused', 'completed', 'failed', 'cancelled', name='bulkactionstatus', native_enum=False, length=32), nullable=False),
    sa.Column('status_reason', sa.Text(), nullable=True),
    sa.Column('total', sa.Integer(), nullable=False),
    sa.Column('processed', sa.Integer(), nullable=False),
    sa.Column('succeeded', sa.Integer(), nullable=False),
    sa.Column('failed', sa.Integer(), nullable=False),
    sa.Column('skipped', sa.Integer(), nullable=False),
    sa.Column('error_summary', sa.JSON(), nullable=True),
    sa.Column('parameters', sa.JSON(), nullable=True),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('priority', sa.Integer(), nullable=False),
    sa.Column('flow_run_id', sa.String(length=64), nullable=True),
    sa.Column('parent_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['parent_id'], ['bulk_actions.id'], name=op.f('fk_bulk_actions_parent_id_bulk_actions'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_bulk_actions')),
    sa.UniqueConstraint('flow_run_id', name=op.f('uq_bulk_actions_flow_run_id'))
    )
    with op.batch_alter_table('bulk_actions', schema=None) as batch_op:
        batch_op.create_index('ix_bulk_actions_status_finished', ['status', 'finished_at'], unique=False)

    op.create_table('companies',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=300), nullable=False),
    sa.Column('website', sa.String(length=500), nullable=True),
    sa.Column('industry', sa.String(length=200), nullable=True),
    sa.Column('nace_code', sa.String(length=16), nullable=True),
    sa.Column('country', sa.String(length=100), nullable=True),
    sa.Column('activity_description', sa.Text(), nullable=True),
    sa.Column('ownership_type', sa.String(length=100), nullable=True),
    sa.Column('status', sa.Enum('active', 'deleted', 'merged', name='companystatus', native_enum=False, length=32), nullable=False),
    sa.Column('merged_into_id', sa.Integer(), nullable=True),
    sa.Column('priority', sa.Integer(), nullable=False),
    sa.Column('enrichment_status', sa.Enum('never', 'enriched', 'failed_retryable', 'failed_permanent', name='enrichmentstatus', native_enum=False, length=32), nullable=False),
    sa.Column('enriched_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('needs_review', sa.Boolean(), nullable=False),
    sa.Column('review_reason', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['merged_into_id'], ['companies.id'], name=op.f('fk_companies_merged_into_id_companies'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_companies'))
    )
    with op.batch_alter_table('companies', schema=None) as batch_op:
        batch_op.create_index('ix_companies_enrichment_due', ['status', 'enrichment_status', 'enriched_at'], unique=False)

    op.create_table('bulk_action_outcomes',
    sa.Column('bulk_action_id', sa.Integer(), nullable=False),
    sa.Column('company_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('status', sa.Enum('pending', 'succeeded', 'skipped', 'failed', name='outcomestatus', native_enum=False, length=32), nullable=False),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['bulk_action_id'], ['bulk_actions.id'], name=op.f('fk_bulk_action_outcomes_bulk_action_id_bulk_actions'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['company_id'], ['companies.id'], name=op.f('fk_bulk_action_outcomes_company_id_companies'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('bulk_action_id', 'company_id', name=op.f('pk_bulk_action_outcomes'))
    )
    with op.batch_alter_table('bulk_action_outcomes', schema=None) as batch_op:
        batch_op.create_index('ix_bulk_action_outcomes_position', ['bulk_action_id', 'position'], unique=False)

    op.create_table('company_embeddings',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('company_id', sa.Integer(), nullable=False),
    sa.Column('model_id', sa.String(length=200), nullable=False),
    sa.Column('dimension', sa.Integer(), nullable=False),
    sa.Column('text_sha256', sa.String(length=64), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('vector', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['company_id'], ['companies.id'], name=op.f('fk_company_embeddings_company_id_companies'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_company_embeddings')),
    sa.UniqueConstraint('company_id', 'model_id', name='uq_company_embeddings_company_model')
    )
    with op.batch_alter_table('company_embeddings', schema=None) as batch_op:
        batch_op.create_index('ix_company_embeddings_model', ['model_id'], unique=False)

    op.create_table('dead_jobs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('bulk_action_id', sa.Integer(), nullable=True),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('company_id', sa.Integer(), nullable=False),
    sa.Column('error_class', sa.String(length=200), nullable=False),
    sa.Column('error_message', sa.Text(), nullable=False),
    sa.Column('retryable', sa.Boolean(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('status', sa.Enum('open', 'requeued', 'needs_review', 'discarded', 'resolved', name='deadjobstatus', native_enum=False, length=32), nullable=False),
    sa.Column('requeue_count', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['bulk_action_id'], ['bulk_actions.id'], name=op.f('fk_dead_jobs_bulk_action_id_bulk_actions'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['company_id'], ['companies.id'], name=op.f('fk_dead_jobs_company_id_companies'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dead_jobs')),
    sa.UniqueConstraint('bulk_action_id', 'company_id', name='uq_dead_jobs_action_company')
    )
    with op.batch_alter_table('dead_jobs', schema=None) as batch_op:
        batch_op.create_index('ix_dead_jobs_status_action', ['status', 'action'], unique=False)

    


def downgrade() -> None:
    
    with op.batch_alter_table('dead_jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_dead_jobs_status_action')

    op.drop_table('dead_jobs')
    with op.batch_alter_table('company_embeddings', schema=None) as batch_op:
        batch_op.drop_index('ix_company_embeddings_model')

    op.drop_table('company_embeddings')
    with op.batch_alter_table('bulk_action_outcomes', schema=None) as batch_op:
        batch_op.drop_index('ix_bulk_action_outcomes_position')

    op.drop_table('bulk_action_outcomes')
    with op.batch_alter_table('companies', schema=None) as batch_op:
        batch_op.drop_index('ix_companies_enrichment_due')

    op.drop_table('companies')
    with op.batch_alter_table('bulk_actions', schema=None) as batch_op:
        batch_op.drop_index('ix_bulk_actions_status_finished')

    op.drop_table('bulk_actions')
    
