"""classification fields on companies: sector, subsector, business model, and how they were made

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 10:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('companies', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sector', sa.String(length=1), nullable=True))
        batch_op.add_column(sa.Column('subsector', sa.String(length=2), nullable=True))
        batch_op.add_column(sa.Column('business_model', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('taxonomy_version', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('classification_mode', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('classification_model', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('classification_input_sha256', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('classified_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('companies', schema=None) as batch_op:
        for column in (
            'classified_at',
            'classification_input_sha256',
            'classification_model',
            'classification_mode',
            'taxonomy_version',
            'business_model',
            'subsector',
            'sector',
        ):
            batch_op.drop_column(column)
