"""The database connection: SQLite settings (WAL, busy_timeout, foreign keys, BEGIN IMMEDIATE,
a private file) and Alembic migrations. Everything SQLite-specific lives here, so the schema and
the queries in store.py stay portable to PostgreSQL.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
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
    # The driver's lock wait and SQLite's busy_timeout are the same wait: keep them equal.
    engine = create_engine(url, connect_args={"check_same_thread": False,
                                              "timeout": BUSY_TIMEOUT_MS / 1000})

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
        # Writers take the write lock up front: no deadlock-prone read->write upgrades between
        # threads. Readers begin deferred and never hold up a writer (WAL).
        write = conn.get_execution_options().get(WRITE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


WRITE = "uplift_write"


@contextmanager
def write_tx(engine: Engine, durable: bool = False) -> Iterator[Connection]:
    """A transaction that writes: on SQLite it holds the write lock from its first statement;
    `durable` makes its commit reach the disk before returning (a 'done' before a move)."""
    with engine.connect() as conn:
        conn.execution_options(**{WRITE: True})
        if durable:
            set_durable(conn, True)
        try:
            with conn.begin():
                yield conn
        finally:
            if durable:
                set_durable(conn, False)


@contextmanager
def read_tx(engine: Engine) -> Iterator[Connection]:
    """A plain read transaction (SQLite: deferred, a WAL snapshot; no lock held)."""
    with engine.connect() as conn, conn.begin():
        yield conn


def mask_url(url: str) -> str:
    """The URL with any password masked, for logs, status, check and errors."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy can parse: show nothing that could be secret
        return "<database url>"


class DatabaseUnavailable(Exception):
    """The job table cannot be opened (a missing folder, permissions, a locked or damaged
    file); the message says which database and why, for a person."""


class AlreadyRunning(DatabaseUnavailable):
    """Another daemon holds this SQLite database."""


class InstanceLock:
    """An exclusive flock on `<db>.lock`, released by the kernel when the process dies."""

    def __init__(self, path: Path, fd: int):
        self.path, self.fd = path, fd

    def close(self) -> None:
        os.close(self.fd)


def acquire_instance_lock(url: str) -> InstanceLock | None:
    """One daemon per SQLite file (readers such as `status` take no lock). PostgreSQL: none;
    nodes coordinate through the table."""
    db = sqlite_path(url)
    if db is None:
        return None
    path = db.with_name(db.name + ".lock")
    try:
        _prepare_sqlite_file(db)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise DatabaseUnavailable(f"cannot open the job database {db}: {exc.strerror} (check "
                                  f"[database] url and the folder's permissions)") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise AlreadyRunning(f"another uplift-capture daemon (PID {holder}) is already using "
                             f"{db}; stop it first, or give this one its own [database] url"
                             ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return InstanceLock(path, fd)


def db_identity(url: str) -> tuple[int, int] | None:
    """(device, inode) of the SQLite file; None for a server database or a missing file."""
    db = sqlite_path(url)
    if db is None:
        return None
    try:
        st = os.stat(db)
    except OSError:
        return (-1, -1)
    return (st.st_dev, st.st_ino)


def check_writable(url: str) -> str | None:
    """A plain reason when the SQLite file or its folder cannot be written, else None."""
    db = sqlite_path(url)
    if db is None:
        return None
    for target, what in ((db, "file"), (db.parent, "folder")):
        if target.exists() and not _writable(target):
            return f"the job database {what} {target} is read-only; the daemon cannot record " \
                   f"what it uploads"
    return None


def _writable(path: Path) -> bool:
    """os.access ignores read-only mounts and immutable files for root: ask the kernel."""
    if not os.access(path, os.W_OK):
        return False
    try:
        if path.is_dir():
            probe = path / f".uplift-write-test-{os.getpid()}"
            os.close(os.open(probe, os.O_CREAT | os.O_WRONLY, 0o600))
            os.unlink(probe)
        else:
            os.close(os.open(path, os.O_WRONLY | os.O_APPEND))
    except OSError:
        return False
    return True


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
SCHEMA_HEAD = "0002"


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
