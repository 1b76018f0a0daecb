"""The job table's schema revision against what this code knows and what a command needs.

Only `run` and `db upgrade` migrate. Every other command opens the table as it is: a daemon of
the previous version may be running on it, and a migration under it broke its writes (issue 19:
after a `status` had added a NOT NULL column, the old daemon's every insert failed). A command
that needs a newer table than it finds refuses in one line; so does every command, `run`
included, on a table newer than this code (its revision is unknown here).

Revisions are numbered 0001, 0002, ... in the order they apply (a test holds Alembic's history
to that), so these comparisons need no Alembic import.
"""

from __future__ import annotations

from sqlalchemy import Engine

from daemon.jobs.engine import (
    SCHEMA_HEAD,
    DatabaseUnavailable,
    current_revision,
    migrations_dir,
    write_tx,
)


class SchemaTooNew(DatabaseUnavailable):
    """The table was migrated by a newer uplift-capture than this one."""


class SchemaBehind(DatabaseUnavailable):
    """The table is older than this command needs: the service has not upgraded it yet."""


def number(revision: str | None) -> int | None:
    """The revision's place in the history: 0 for no schema at all, None if not ours."""
    if revision is None:
        return 0
    return int(revision) if revision.isdigit() and len(revision) == 4 else None


def is_known(revision: str | None) -> bool:
    n = number(revision)
    return n is not None and n <= int(SCHEMA_HEAD)


def is_behind(revision: str | None, need: str = SCHEMA_HEAD) -> bool:
    """A known revision older than `need` (an empty database counts as behind)."""
    n = number(revision)
    return n is not None and n < int(need)


def too_new(revision: str | None) -> SchemaTooNew:
    from daemon import __version__

    # A foreign table's revision may be anything: shown on one line, and not at length.
    shown = revision if revision and revision.isprintable() else repr(revision)
    return SchemaTooNew(
        f"the job table is at schema {shown[:40]}, which this uplift-capture {__version__} does "
        f"not know (its newest is {SCHEMA_HEAD}): a newer version upgraded it, here or on "
        f"another station; install that version here too")


def behind(revision: str | None, need: str) -> SchemaBehind:
    return SchemaBehind(
        f"the service has not upgraded the job table yet: restart it (the table is at schema "
        f"{revision or 'none'}, this needs {need}; the service upgrades it when it starts)")


def check(engine: Engine, need: str | None = None) -> str | None:
    """The table's revision; SchemaTooNew when this code does not know it, SchemaBehind when it
    is older than `need`."""
    revision = current_revision(engine)
    if not is_known(revision):
        raise too_new(revision)
    if need is not None and revision is not None and is_behind(revision, need):
        raise behind(revision, need)
    return revision


def require(engine: Engine, need: str) -> None:
    """For a command (or part of one) that cannot work without the table at `need` or later:
    `schema.require(store.engine, "0004")` refuses in one line when it is older."""
    revision = current_revision(engine)
    if is_behind(revision, need):
        raise behind(revision, need)


def has(engine: Engine, need: str) -> bool:
    """For a part that can do without (reading an older table as best it can): is the table
    at `need` or later? E.g. `status` shows watch roots only `if schema.has(engine, "0004")`."""
    return not is_behind(current_revision(engine), need)


def lag(engine: Engine) -> str | None:
    """The one-line reason when the table is older than this code, else None."""
    revision = current_revision(engine)
    return str(behind(revision, SCHEMA_HEAD)) if is_behind(revision) else None


def explain(engine: Engine) -> None:
    """After a query failed: SchemaBehind when the table is older than this code (a column or
    table it reads is not there yet), so the person reads why and what to do."""
    try:
        reason = lag(engine)
    except Exception:  # the database itself is the trouble: the caller's error says so
        return
    if reason is not None:
        raise SchemaBehind(reason)


# pg_advisory_xact_lock key serializing migrations across nodes (any constant of our own).
MIGRATION_LOCK_KEY = 0x75706C696674  # "uplift"


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate: only for `run` and `db upgrade` (this module says why). A table newer than
    this code is one plain line (SchemaTooNew), not Alembic's traceback."""
    current = current_revision(engine)
    if revision == "head" and current == SCHEMA_HEAD:
        return
    if not is_known(current):
        raise too_new(current)
    from alembic import command
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(migrations_dir()))
    # SQLite: the write lock up front, so a second process upgrading at once waits, then
    # finds head, instead of failing on a read->write lock upgrade.
    with write_tx(engine) as conn:
        if conn.dialect.name == "postgresql":
            # Nodes starting together on an empty database: one migrates, the others wait
            # here. The lock ends with this transaction (commit or rollback); statements after
            # it see the winner's commit (READ COMMITTED), so Alembic finds head and does
            # nothing. PostgreSQL's DDL is transactional: a failed upgrade leaves no trace.
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})")
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
