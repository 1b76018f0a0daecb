"""Alembic environment. The daemon passes its own connection (with its SQLite settings) in
config.attributes["connection"] (on PostgreSQL holding the migration lock, see
jobs/engine.upgrade); the alembic CLI falls back to sqlalchemy.url."""

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
