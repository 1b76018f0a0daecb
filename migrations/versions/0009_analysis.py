"""analysis: following an uploaded capture through Uplift's processing

After `done`, each capture is read back (GET /captures) until Uplift reports a final state
(daemon/analysis/). `analysis_status` is NULL for jobs done before this version (never
followed) and until the upload is confirmed; the follower's claim of a row is
`analysis_node` + `analysis_lease` (a node that dies leaves a lease that runs out, and another
node takes the capture over). Additive only (nullable columns and a plain index): a daemon one
schema version behind keeps working, and its `done` jobs are simply not followed.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('jobs') as batch:
        batch.add_column(sa.Column('analysis_status', sa.String(length=16), nullable=True))
        batch.add_column(sa.Column('analysis_error', sa.Text(), nullable=True))
        batch.add_column(sa.Column('analysis_fps', sa.Float(), nullable=True))
        batch.add_column(sa.Column('analysis_checked_at', sa.Float(), nullable=True))
        batch.add_column(sa.Column('analysis_next_at', sa.Float(), nullable=True))
        batch.add_column(sa.Column('analysis_deadline', sa.Float(), nullable=True))
        batch.add_column(sa.Column('analysis_looks', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('analysis_node', sa.String(length=64), nullable=True))
        batch.add_column(sa.Column('analysis_lease', sa.Float(), nullable=True))
        batch.create_index('ix_jobs_analysis_due', ['analysis_status', 'analysis_next_at'])


def downgrade() -> None:
    with op.batch_alter_table('jobs') as batch:
        batch.drop_index('ix_jobs_analysis_due')
        for name in ('analysis_lease', 'analysis_node', 'analysis_looks', 'analysis_deadline',
                     'analysis_next_at', 'analysis_checked_at', 'analysis_fps', 'analysis_error',
                     'analysis_status'):
            batch.drop_column(name)
