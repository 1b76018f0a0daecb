"""retention: uploaded originals the daemon deleted to free space ([retention])

`retention` says what retention did with a done job's file: `deleted` (it freed `size` bytes
at `retained_at`), or found it `changed` or `missing` (the uploaded version is no longer
there, so the row is never looked at again). NULL: not touched. Additive only (nullable
columns): a daemon one schema version behind keeps working and simply deletes nothing.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('jobs') as batch:
        batch.add_column(sa.Column('retention', sa.String(length=16), nullable=True))
        batch.add_column(sa.Column('retained_at', sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('jobs') as batch:
        batch.drop_column('retained_at')
        batch.drop_column('retention')
