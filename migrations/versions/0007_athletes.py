"""athletes: the athlete directory (folder name -> athlete UUID), set at the station

Additive only (a new table): a daemon one schema version behind keeps working (it goes on
reading only the config's [athletes]).

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('athletes',
                    sa.Column('folder', sa.Text(), nullable=False),  # NFC
                    sa.Column('athlete_id', sa.String(length=36), nullable=False),
                    sa.Column('name', sa.Text(), nullable=True),
                    sa.Column('set_by', sa.Text(), nullable=False),
                    sa.Column('set_where', sa.Text(), nullable=False),
                    sa.Column('set_at', sa.Float(), nullable=False),
                    sa.PrimaryKeyConstraint('folder'))


def downgrade() -> None:
    op.drop_table('athletes')
