"""Alembic environment. The daemon passes its own connection (with its SQLite settings) in
config.attributes["connection"] (on PostgreSQL holding the migration lock, see
jobs/engine.upgrade); the alembic CLI falls back to sqlalchemy.url.

Rules for a new migration (tests/integration/test_migrations_additive.py holds every one from
0004 on to them):
- Revisions are numbered: versions/NNNN_what.py with revision "NNNN", down_revision the one
  before, one line of history; SCHEMA_HEAD in daemon/jobs/engine.py names the newest.
- Additive only, "expand now, contract later": on PostgreSQL one station's upgrade changes the
  table under the daemons of the others, which run the previous version until restarted, and
  their writes must keep working. So: new tables, new indexes (not unique ones on an existing
  table), new columns that are nullable or have a server_default. Never drop or rename a table,
  column, index or constraint, change a column's type, make one NOT NULL, or add a constraint
  to an existing table. A contraction (dropping what no version in use still reads) waits for
  a later release, once every station runs code that no longer needs it.
- Only `uplift-capture run` and `uplift-capture db upgrade` migrate; every other command reads
  the table as it is (daemon/jobs/schema.py) and refuses in one line what it cannot read.
"""

from alembic import context
from sqlalchemy import engine_from_config, pool

from daemon.jobs.engine import normalize_url
from daemon.jobs.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=True, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    section = dict(config.get_section(config.config_ini_section) or {})
    if section.get("sqlalchemy.url"):
        # postgresql:// means psycopg 3 here too, as it does for the daemon.
        section["sqlalchemy.url"] = normalize_url(section["sqlalchemy.url"]).render_as_string(
            hide_password=False)
    engine = engine_from_config(section, prefix="sqlalchemy.", poolclass=pool.NullPool)
    with engine.connect() as conn:
        _run(conn)
