"""fleet: file identity (owner, watch, rel_path), claim holder and number, nodes

Revision ID: 0003
Revises: 0002
"""

import os

import sqlalchemy as sa
from alembic import op

from daemon.jobs import paths

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('jobs') as batch:
        batch.add_column(sa.Column('watch', sa.Text(), nullable=True))
        batch.add_column(sa.Column('rel_path', sa.Text(), nullable=True))
        batch.add_column(sa.Column('owner', sa.String(length=64), nullable=False,
                                   server_default=''))
        batch.add_column(sa.Column('node', sa.String(length=64), nullable=True))
        batch.add_column(sa.Column('claim_no', sa.Integer(), nullable=False,
                                   server_default='0'))
    # Existing rows are one node's: watch = its root, rel_path below it, owner "".
    conn = op.get_bind()
    jobs = sa.table('jobs', sa.column('id', sa.Integer), sa.column('path', sa.Text),
                    sa.column('root', sa.Text), sa.column('watch', sa.Text),
                    sa.column('rel_path', sa.Text))
    rows = list(conn.execute(sa.select(jobs.c.id, jobs.c.path, jobs.c.root)))
    for row in rows:
        rel = os.path.relpath(paths.from_db(row.path), row.root)
        conn.execute(sa.update(jobs).where(jobs.c.id == row.id).values(
            watch=row.root, rel_path=paths.to_db(rel)))
    with op.batch_alter_table('jobs') as batch:
        batch.alter_column('watch', existing_type=sa.Text(), nullable=False)
        batch.alter_column('rel_path', existing_type=sa.Text(), nullable=False)
        batch.drop_constraint('uq_jobs_file_version', type_='unique')
        batch.create_unique_constraint(
            'uq_jobs_file_identity', ['owner', 'watch', 'rel_path', 'size', 'mtime_ns'])
    op.create_table('nodes',
                    sa.Column('name', sa.String(length=64), nullable=False),
                    sa.Column('heartbeat_at', sa.Float(), nullable=False),
                    sa.Column('started_at', sa.Float(), nullable=False),
                    sa.Column('host', sa.Text(), nullable=True),
                    sa.PrimaryKeyConstraint('name'))


def downgrade() -> None:
    op.drop_table('nodes')
    with op.batch_alter_table('jobs') as batch:
        batch.drop_constraint('uq_jobs_file_identity', type_='unique')
        batch.create_unique_constraint('uq_jobs_file_version', ['path', 'size', 'mtime_ns'])
        for name in ('claim_no', 'node', 'owner', 'rel_path', 'watch'):
            batch.drop_column(name)
