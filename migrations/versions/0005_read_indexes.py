"""read indexes: newest jobs of a state, uploads finished since a time

Revision ID: 0005
Revises: 0004

Additive (two indexes): a daemon one schema version behind keeps working.
"""

from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # `status` and the console list the newest jobs of each state (LIMIT, no sort of the whole
    # table); the chart and /metrics ask for uploads finished since a time.
    op.create_index('ix_jobs_state_id', 'jobs', ['state', 'id'])
    op.create_index('ix_jobs_state_finished', 'jobs', ['state', 'finished_at'])


def downgrade() -> None:
    op.drop_index('ix_jobs_state_finished', table_name='jobs')
    op.drop_index('ix_jobs_state_id', table_name='jobs')
