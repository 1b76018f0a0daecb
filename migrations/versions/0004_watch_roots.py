"""watch roots' identity (device, inode) per node: a folder that drops out is not "gone"

Additive only (a new table): a daemon one schema version behind keeps working.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('watch_roots',
                    sa.Column('node', sa.String(length=64), nullable=False),
                    sa.Column('watch', sa.Text(), nullable=False),
                    sa.Column('path', sa.Text(), nullable=False),
                    sa.Column('dev', sa.BigInteger(), nullable=False),
                    sa.Column('ino', sa.BigInteger(), nullable=False),
                    sa.Column('recorded_at', sa.Float(), nullable=False),
                    sa.PrimaryKeyConstraint('node', 'watch'))


def downgrade() -> None:
    op.drop_table('watch_roots')
