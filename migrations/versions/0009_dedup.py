"""dedup clusters, members, pair evidence and merge moves

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 12:23:53.856305
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('dedup_clusters',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('bulk_action_id', sa.Integer(), nullable=False),
    sa.Column('winner_id', sa.Integer(), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('winner_reason', sa.Text(), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('merged_by', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['bulk_action_id'], ['bulk_actions.id'], name=op.f('fk_dedup_clusters_bulk_action_id_bulk_actions'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['merged_by'], ['bulk_actions.id'], name=op.f('fk_dedup_clusters_merged_by_bulk_actions'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['winner_id'], ['companies.id'], name=op.f('fk_dedup_clusters_winner_id_companies'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dedup_clusters'))
    )
    with op.batch_alter_table('dedup_clusters', schema=None) as batch_op:
        batch_op.create_index('ix_dedup_clusters_sweep_status', ['bulk_action_id', 'status'], unique=False)

    op.create_table('dedup_cluster_members',
    sa.Column('cluster_id', sa.Integer(), nullable=False),
    sa.Column('company_id', sa.Integer(), nullable=False),
    sa.Column('is_winner', sa.Boolean(), nullable=False),
    sa.Column('seen_updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['cluster_id'], ['dedup_clusters.id'], name=op.f('fk_dedup_cluster_members_cluster_id_dedup_clusters'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['company_id'], ['companies.id'], name=op.f('fk_dedup_cluster_members_company_id_companies'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('cluster_id', 'company_id', name=op.f('pk_dedup_cluster_members'))
    )
    with op.batch_alter_table('dedup_cluster_members', schema=None) as batch_op:
        batch_op.create_index('ix_dedup_cluster_members_company', ['company_id'], unique=False)

    op.create_table('dedup_pairs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('bulk_action_id', sa.Integer(), nullable=False),
    sa.Column('cluster_id', sa.Integer(), nullable=True),
    sa.Column('company_a', sa.Integer(), nullable=False),
    sa.Column('company_b', sa.Integer(), nullable=False),
    sa.Column('cosine', sa.Float(), nullable=True),
    sa.Column('name_score', sa.Float(), nullable=True),
    sa.Column('same_domain', sa.Boolean(), nullable=True),
    sa.Column('same_country', sa.Boolean(), nullable=True),
    sa.Column('rule', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['bulk_action_id'], ['bulk_actions.id'], name=op.f('fk_dedup_pairs_bulk_action_id_bulk_actions'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['cluster_id'], ['dedup_clusters.id'], name=op.f('fk_dedup_pairs_cluster_id_dedup_clusters'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dedup_pairs')),
    sa.UniqueConstraint('bulk_action_id', 'company_a', 'company_b', name='uq_dedup_pairs_sweep_pair')
    )
    with op.batch_alter_table('dedup_pairs', schema=None) as batch_op:
        batch_op.create_index('ix_dedup_pairs_cluster', ['cluster_id'], unique=False)

    op.create_table('merge_moves',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('bulk_action_id', sa.Integer(), nullable=False),
    sa.Column('cluster_id', sa.Integer(), nullable=False),
    sa.Column('table_name', sa.String(length=64), nullable=False),
    sa.Column('row_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('from_company_id', sa.Integer(), nullable=False),
    sa.Column('to_company_id', sa.Integer(), nullable=True),
    sa.Column('before', sa.Text(), nullable=True),
    sa.Column('undone_by', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['bulk_action_id'], ['bulk_actions.id'], name=op.f('fk_merge_moves_bulk_action_id_bulk_actions'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['cluster_id'], ['dedup_clusters.id'], name=op.f('fk_merge_moves_cluster_id_dedup_clusters'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['undone_by'], ['bulk_actions.id'], name=op.f('fk_merge_moves_undone_by_bulk_actions'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_merge_moves'))
    )
    with op.batch_alter_table('merge_moves', schema=None) as batch_op:
        batch_op.create_index('ix_merge_moves_action', ['bulk_action_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('merge_moves', schema=None) as batch_op:
        batch_op.drop_index('ix_merge_moves_action')

    op.drop_table('merge_moves')
    with op.batch_alter_table('dedup_pairs', schema=None) as batch_op:
        batch_op.drop_index('ix_dedup_pairs_cluster')

    op.drop_table('dedup_pairs')
    with op.batch_alter_table('dedup_cluster_members', schema=None) as batch_op:
        batch_op.drop_index('ix_dedup_cluster_members_company')

    op.drop_table('dedup_cluster_members')
    with op.batch_alter_table('dedup_clusters', schema=None) as batch_op:
        batch_op.drop_index('ix_dedup_clusters_sweep_status')

    op.drop_table('dedup_clusters')
