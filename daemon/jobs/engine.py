"""The database connection: SQLite settings (WAL, busy_timeout, foreign keys, BEGIN IMMEDIATE
for writers only, a private file, one daemon per file), PostgreSQL's (psycopg 3, libpq's
environment, a bounded pool) and Alembic migrations on both. Every dialect specific lives here,
so the schema and the queries in store.py stay portable.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import URL, make_url

# SQLite: how long a writer waits for the write lock, both as PRAGMA busy_timeout and as the
# driver's connect timeout (the same wait; they must agree).
BUSY_TIMEOUT_MS = 10_000

# PostgreSQL: one node's threads (uploads, settle, status) share the pool; the heartbeat and
# the listener have connections of their own; three nodes stay well inside the server's
# default max_connections (100).
PG_POOL_SIZE = 5
PG_MAX_OVERFLOW = 10
# libpq's defaults unless the URL sets them: connecting to a host that is gone fails in
# seconds, and a silent network is noticed in about a minute, not after TCP's two hours.
PG_CONNECT_DEFAULTS: dict[str, Any] = {
    "application_name": "uplift-capture", "connect_timeout": 10,
    "keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3,
    # A station frozen (SIGSTOP, a paused VM) inside a transaction would hold its row locks, and
    # with them the fleet's takeover of its work, until it wakes: the server ends such a
    # transaction after 10 s (ours last milliseconds), so a takeover is not held up for ever.
    "options": "-c idle_in_transaction_session_timeout=10000",
}
PG_DRIVER = "postgresql+psycopg"

# SQLite has one writer at a time. Between this process's threads the turn is handed over by a
# lock: SQLite's own busy handler sleeps in steps up to 100 ms however soon the lock frees, and
# with uploads, reservations and the intake writing at once those sleeps left the link idle
# (bench/RESULTS.md). busy_timeout still covers other processes (the CLI's retry, pause).
# Re-entrant, so a nested write in one thread fails on SQLite's busy_timeout, as before.
_WRITERS: weakref.WeakKeyDictionary[Engine, threading.RLock] = weakref.WeakKeyDictionary()
_WRITERS_BY_FILE: dict[str, threading.RLock] = {}
_WRITERS_GUARD = threading.Lock()


@functools.lru_cache(maxsize=16)  # the health tick asks every few seconds; parsing is the cost
@functools.lru_cache(maxsize=8)
def sqlite_path(url: str) -> Path | None:
    u = make_url(url)  # (cached: the health tick asks every few seconds)
    if u.get_backend_name() != "sqlite" or not u.database or u.database == ":memory:":
        return None
    return Path(u.database)


def _prepare_sqlite_file(path: Path) -> None:
    # The job table names athletes and files: keep it private to the service user.
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))


def normalize_url(url: str | URL) -> URL:
    """A plain postgresql:// (or postgres://) URL runs on psycopg 3, the driver the
    `postgres` extra installs (SQLAlchemy would otherwise look for psycopg2)."""
    u = make_url(url)
    if u.drivername in ("postgresql", "postgres"):
        u = u.set(drivername=PG_DRIVER)
    return u


def _make_pg_engine(u: URL, pool_size: int = PG_POOL_SIZE,
                    max_overflow: int = PG_MAX_OVERFLOW, pool_timeout: float = 30) -> Engine:
    # libpq reads PGPASSWORD, PGPASSFILE / ~/.pgpass, PGSSLMODE... when the URL leaves them
    # out, and query parameters (sslmode=, sslrootcert=...) pass through to it as they are.
    connect_args = {k: v for k, v in PG_CONNECT_DEFAULTS.items() if k not in u.query}
    # pre_ping: a connection the server dropped (restart, failover) is replaced at checkout.
    return create_engine(u, pool_pre_ping=True, pool_size=pool_size,
                         max_overflow=max_overflow, pool_timeout=pool_timeout,
                         connect_args=connect_args)


def own_engine(engine: Engine) -> Engine:
    """One connection of its own on `engine`'s server, out of the shared pool, for a thread
    that must never wait behind the others (the heartbeat: uploads holding every pooled
    connection must not fence a healthy node). SQLite has no fleet: the engine itself."""
    if engine.dialect.name != "postgresql":
        return engine
    return _make_pg_engine(engine.url, pool_size=1, max_overflow=0, pool_timeout=10)


def make_engine(url: str, create: bool = True) -> Engine:
    """`create`: make the SQLite file if it is not there (the daemon, `db upgrade`); readers
    such as `status` never create one."""
    path = sqlite_path(url)
    if make_url(url).get_backend_name() != "sqlite":
        return _make_pg_engine(normalize_url(url))
    if path is not None:
        if create:
            _prepare_sqlite_file(path)
        elif not path.exists():
            raise DatabaseUnavailable(f"there is no job database at {path} yet (the daemon "
                                      f"creates it when it starts)")
        single_name(path)
        # Connections never create the file again: a database deleted under a running daemon
        # must be noticed, not silently replaced by an empty one.
        url = f"sqlite:///file:{path}?mode=rw&uri=true"
    # The driver's lock wait and SQLite's busy_timeout are the same wait: keep them equal.
    engine = create_engine(url, connect_args={"check_same_thread": False,
                                              "timeout": BUSY_TIMEOUT_MS / 1000})
    with _WRITERS_GUARD:  # engines on one file share its turn
        _WRITERS[engine] = (_WRITERS_BY_FILE.setdefault(str(path.resolve()), threading.RLock())
                            if path is not None else threading.RLock())

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN IMMEDIATE itself (pysqlite would defer it).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")  # readers (status) never block the worker
        cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys=ON")
        # Each pooled connection keeps its own page cache (2 MiB by default): a small one
        # keeps memory flat as the table grows (bench soak and readside: 512 KiB cost 1.2 MiB
        # more at 30,000 rows, with the same timings); the OS's file cache holds the pages.
        cur.execute("PRAGMA cache_size=-128")
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


def writer_turn(engine: Engine) -> contextlib.AbstractContextManager[Any]:
    """This process's turn to write `engine`'s file (SQLite; nothing to wait for elsewhere)."""
    turn = _WRITERS.get(engine)
    return turn if turn is not None else contextlib.nullcontext()


@contextmanager
def write_tx(engine: Engine, durable: bool = False) -> Iterator[Connection]:
    """A transaction that writes: on SQLite it holds the write lock from its first statement;
    `durable` makes its commit reach the disk before returning (a 'done' before a move)."""
    with writer_turn(engine), engine.connect() as conn:
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
    """A plain read transaction (SQLite: deferred, a WAL snapshot; no lock held.
    PostgreSQL: READ ONLY, so a reader that tried to write would fail loudly)."""
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            # A connection characteristic: the pool resets it when the connection goes back.
            conn.execution_options(postgresql_readonly=True)
        with conn.begin():
            yield conn


def mask_url(url: str) -> str:
    """The URL with any password masked, for logs, status, check and errors (libpq also
    takes one as ?password=, so that is masked too)."""
    try:
        u = make_url(url)
        if "password" in u.query:
            u = u.update_query_dict({"password": "***"})
        return u.render_as_string(hide_password=True).replace("=%2A%2A%2A", "=***")
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


def single_name(db: Path) -> None:
    """Refuse a SQLite file that has more than one name (a hard link): SQLite names the WAL
    and we name the lock after the name opened, so each name would get its own, and a second
    daemon, or even a `retry` through the other name, could corrupt the table."""
    try:
        links = os.stat(db).st_nlink
    except OSError:
        return  # not there: the caller says so in its own words
    if links > 1:
        raise DatabaseUnavailable(
            f"the job database {db} has {links} names (hard links): each name would get its "
            f"own WAL and lock, and using two can corrupt it; keep one (find {db.parent} "
            f"-samefile {db} lists them) and remove the others")


def acquire_instance_lock(url: str) -> InstanceLock | None:
    """One daemon per SQLite file (readers such as `status` take no lock). PostgreSQL: none;
    nodes coordinate through the table. The lock goes with the file, not the name it was
    opened by: beside its real path (a symlinked name or folder shares it), and a file with a
    second name (a hard link) is refused."""
    db = sqlite_path(url)
    if db is None:
        return None
    path = Path(os.path.realpath(db) + ".lock")
    if path.exists() and not db.exists():
        # A daemon used this database, and it is gone: starting afresh would upload every file
        # in the watch folders again. A person decides.
        raise DatabaseUnavailable(
            f"the job database {db} is missing, but a daemon used it before ({path} is "
            f"there): restore it from a backup, or delete {path} to start with an empty one "
            f"(every file in the watch folders is then uploaded again)")
    try:
        _prepare_sqlite_file(db)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise DatabaseUnavailable(f"cannot open the job database {db}: {exc.strerror} (check "
                                  f"[database] url and the folder's permissions)") from None
    try:
        single_name(db)
    except DatabaseUnavailable:
        os.close(fd)
        raise
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
    # Its folder, or the nearest one there when the daemon has folders to make: can this user?
    folder = next((p for p in db.parents if p.exists()), None) if db else None
    for target, what in ((db, "file"), (folder, "folder")):
        if target is not None and target.exists() and not _writable(target):
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
SCHEMA_HEAD = "0010"


def current_revision(engine: Engine) -> str | None:
    with engine.begin() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


# ---- fleet mode: the dialect specifics jobs/store.py and jobs/fleet.py need ----------------

JOBS_CHANNEL = "uplift_jobs"  # NOTIFY'd when work is queued; every node LISTENs
ATHLETES_CHANNEL = "uplift_athletes"  # NOTIFY'd when the athlete directory changes
ROOTS_CHANNEL = "uplift_roots"  # NOTIFY'd when a person accepts a moved watch root


def is_server(bind: Engine | Connection) -> bool:
    """A server database (PostgreSQL): several nodes may share it. SQLite is one node."""
    return bind.dialect.name != "sqlite"


def insert_for(conn: Connection) -> Any:
    """The dialect's INSERT construct (it has on_conflict_do_nothing / _do_update)."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert
        return pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert
    return sqlite_insert


def notify_jobs(conn: Connection) -> None:
    """Wake idle nodes: PostgreSQL delivers a NOTIFY at the commit of this transaction (not at
    all if it rolls back). SQLite: one node, woken in-process."""
    _notify(conn, JOBS_CHANNEL)


def notify_athletes(conn: Connection) -> None:
    """Tell every node the athlete directory changed (at commit; PostgreSQL only: SQLite is
    one node, told by the caller's poke)."""
    _notify(conn, ATHLETES_CHANNEL)


def notify_roots(conn: Connection) -> None:
    """Tell every node a watch root's identity was accepted (`roots accept`): a running node
    reads the identities afresh rather than keep the one it cached."""
    _notify(conn, ROOTS_CHANNEL)


def _notify(conn: Connection, channel: str) -> None:
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"NOTIFY {channel}")


def db_now(conn: Connection) -> float:
    """Epoch seconds by the database's clock on a server (heartbeats and leases compare
    across machines whose clocks differ); the local clock on SQLite."""
    if conn.dialect.name == "postgresql":
        return float(conn.exec_driver_sql(
            "SELECT extract(epoch FROM clock_timestamp())").scalar_one())
    import time
    return time.time()

