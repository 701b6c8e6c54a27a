"""dead jobs: the bulk action a requeued dead job was handed to

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 08:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # batch mode: SQLite cannot add a foreign key to an existing table in place
    with op.batch_alter_table('dead_jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('requeued_as_bulk_action_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f('fk_dead_jobs_requeued_as_bulk_action_id_bulk_actions'),
            'bulk_actions',
            ['requeued_as_bulk_action_id'],
            ['id'],
            ondelete='SET NULL',
        )


def downgrade() -> None:
    with op.batch_alter_table('dead_jobs', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_dead_jobs_requeued_as_bulk_action_id_bulk_actions'), type_='foreignkey')
        batch_op.drop_column('requeued_as_bulk_action_id')
