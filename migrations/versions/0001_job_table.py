"""job table

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-28 12:41:59.463626
"""

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('jobs',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('root', sa.Text(), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('mtime_ns', sa.BigInteger(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('athlete_id', sa.String(length=36), nullable=True),
    sa.Column('session_group_id', sa.String(length=36), nullable=True),
    sa.Column('file_name', sa.Text(), nullable=True),
    sa.Column('capture_time', sa.String(length=40), nullable=True),
    sa.Column('camera_configuration', sa.Text(), nullable=True),
    sa.Column('movement_attributes', sa.Text(), nullable=True),
    sa.Column('force', sa.Boolean(), nullable=False),
    sa.Column('session_id', sa.String(length=64), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('next_attempt_at', sa.Float(), nullable=False),
    sa.Column('bytes_sent', sa.BigInteger(), nullable=False),
    sa.Column('upload_started_at', sa.Float(), nullable=True),
    sa.Column('etag', sa.String(length=80), nullable=True),
    sa.Column('fingerprint', sa.String(length=64), nullable=True),
    sa.Column('archived_path', sa.Text(), nullable=True),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.Column('updated_at', sa.Float(), nullable=False),
    sa.Column('finished_at', sa.Float(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('path', 'size', 'mtime_ns', name='uq_jobs_file_version')
    )
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.create_index('ix_jobs_athlete_fingerprint', ['athlete_id', 'fingerprint'],
                              unique=False)
        batch_op.create_index('ix_jobs_path', ['path'], unique=False)
        batch_op.create_index('ix_jobs_state_due', ['state', 'next_attempt_at'], unique=False)

    op.create_table('notices',
    sa.Column('name', sa.String(length=32), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('until', sa.Float(), nullable=True),
    sa.Column('updated_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_table('reservations',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('job_id', sa.Integer(), nullable=False),
    sa.Column('session_id', sa.String(length=64), nullable=False),
    sa.Column('session_group_id', sa.String(length=36), nullable=False),
    sa.Column('upload_url', sa.Text(), nullable=False),
    sa.Column('expires_at', sa.Float(), nullable=False),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('reservations', schema=None) as batch_op:
        batch_op.create_index('ix_reservations_job', ['job_id'], unique=False)




def downgrade() -> None:

    with op.batch_alter_table('reservations', schema=None) as batch_op:
        batch_op.drop_index('ix_reservations_job')

    op.drop_table('reservations')
    op.drop_table('notices')
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_jobs_state_due')
        batch_op.drop_index('ix_jobs_path')
        batch_op.drop_index('ix_jobs_athlete_fingerprint')

    op.drop_table('jobs')

