"""lapses: upload windows that ran out in a row, per job (bounded like refusals)

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Additive, with a default: a daemon one version behind keeps inserting jobs.
    with op.batch_alter_table('jobs') as batch:
        batch.add_column(sa.Column('lapses', sa.Integer(), nullable=False,
                                   server_default='0'))


def downgrade() -> None:
    with op.batch_alter_table('jobs') as batch:
        batch.drop_column('lapses')
