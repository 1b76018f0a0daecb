"""boundary: when an upload's closing boundary went out, and the capture to ask Uplift about

An upload whose answer was lost is settled by reading the capture back (GET /captures/{id})
before anything is sent again: `check_session_id` names that capture while the job waits, and
`boundary_sent_at` (written durably just before the closing boundary) dates the upload.
Additive only (nullable columns): a daemon one schema version behind keeps working.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('jobs') as batch:
        batch.add_column(sa.Column('boundary_sent_at', sa.Float(), nullable=True))
        batch.add_column(sa.Column('check_session_id', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('jobs') as batch:
        batch.drop_column('check_session_id')
        batch.drop_column('boundary_sent_at')
