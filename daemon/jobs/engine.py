"""The database connection: SQLite settings (WAL, busy_timeout, foreign keys, BEGIN IMMEDIATE,
a private file) and Alembic migrations. Everything SQLite-specific lives here, so the schema and
the queries in store.py stay portable to PostgreSQL.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url

BUSY_TIMEOUT_MS = 10_000


def sqlite_path(url: str) -> Path | None:
    u = make_url(url)
    if u.get_backend_name() != "sqlite" or not u.database or u.database == ":memory:":
        return None
    return Path(u.database)


def _prepare_sqlite_file(path: Path) -> None:
    # The job table names athletes and files: keep it private to the service user.
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))


def make_engine(url: str) -> Engine:
    path = sqlite_path(url)
    if make_url(url).get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    if path is not None:
        _prepare_sqlite_file(path)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN IMMEDIATE itself (pysqlite would defer it).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")  # readers (status) never block the worker
        cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys=ON")
        # WAL at NORMAL survives a crash of this process; only a power cut can roll back the
        # last commits, which a rescan or the recovery at start redoes. Commits that must
        # survive even that (a 'done' before its file is moved or deleted) use durable().
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Take the write lock up front: no deadlock-prone read->write upgrades between threads.
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def set_durable(conn: Connection, durable: bool) -> None:
    """Make the next commit on this connection reach the disk before it returns (SQLite: its
    WAL is fsynced, and with it every earlier commit). Call outside a transaction."""
    if conn.dialect.name == "sqlite":
        conn.connection.dbapi_connection.execute(  # type: ignore[union-attr]
            f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")


def migrations_dir() -> Path:
    try:
        found = Path(str(resources.files("daemon.migrations")))
        if (found / "env.py").exists():
            return found
    except ModuleNotFoundError:
        pass
    return Path(__file__).resolve().parents[2] / "migrations"


# The newest migration's revision. A test keeps it equal to Alembic's head; it lets the daemon
# skip importing Alembic (several MiB resident for the life of the process) when the schema is
# already current, which is every start but the first after an upgrade.
SCHEMA_HEAD = "0001"


def current_revision(engine: Engine) -> str | None:
    with engine.begin() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def upgrade(engine: Engine, revision: str = "head") -> None:
    if revision == "head" and current_revision(engine) == SCHEMA_HEAD:
        return
    from alembic import command
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(migrations_dir()))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
