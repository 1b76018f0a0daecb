"""The database engine layer on both dialects, against a real SQLite file and a real PostgreSQL
server: readers never hold up writers, one daemon per SQLite file (released by the kernel when
it dies), the file's identity, concurrent migrations, libpq's environment, masked URLs."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pgserver import PgServer, start_postgres, unavailable
from sqlalchemy import Engine, func, insert, select, text
from sqlalchemy.exc import DBAPIError, OperationalError
from support import immutable, wait_for

from daemon.jobs.engine import (
    PG_POOL_SIZE,
    SCHEMA_HEAD,
    AlreadyRunning,
    DatabaseUnavailable,
    acquire_instance_lock,
    check_writable,
    current_revision,
    db_identity,
    make_engine,
    mask_url,
    read_tx,
    write_tx,
)
from daemon.jobs.models import Node
from daemon.jobs.schema import upgrade

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    upgrade(eng)
    try:
        yield eng
    finally:
        eng.dispose()


def add_node(eng: Engine, name: str, **kw: bool) -> None:
    with write_tx(eng, **kw) as conn:
        conn.execute(insert(Node).values(name=name, heartbeat_at=1.0, started_at=1.0))


# ---- reads vs writes (issue 9, defect 6) ------------------------------------------------------

def test_a_reader_holding_its_transaction_does_not_delay_a_writer(db_url: str,
                                                                  engine: Engine) -> None:
    reader = make_engine(db_url, create=False)  # as `status` opens it: its own engine
    opened, release, failed = threading.Event(), threading.Event(), []

    def read() -> None:
        try:
            with read_tx(reader) as conn:
                conn.execute(select(func.count()).select_from(Node)).scalar_one()
                opened.set()
                # A long read (a big status page): held until the writer is done, at most 2 s.
                # Were the reader to take the write lock, the writer would wait all of it.
                release.wait(2.0)
        except Exception as exc:  # pragma: no cover - reported by the assertion below
            failed.append(exc)
            opened.set()

    thread = threading.Thread(target=read)
    thread.start()
    try:
        assert opened.wait(10), "the reader never began"
        started = time.monotonic()
        add_node(engine, "writer")
        took = time.monotonic() - started
    finally:
        release.set()
        thread.join(10)
        reader.dispose()
    assert not failed, failed
    assert took < 0.3, f"a write waited {took:.2f}s behind an open read transaction"
    with read_tx(engine) as conn:
        assert conn.execute(select(Node.name)).scalars().all() == ["writer"]


def test_writers_take_turns_and_none_is_lost(engine: Engine) -> None:
    # Eight threads each read-then-write in one write_tx: with the lock taken up front there is
    # no read->write upgrade to deadlock on (SQLite would answer "database is locked" at once).
    errors: list[BaseException] = []

    def bump(i: int) -> None:
        try:
            with write_tx(engine) as conn:
                n = conn.execute(select(func.count()).select_from(Node)).scalar_one()
                conn.execute(insert(Node).values(name=f"n{i}", heartbeat_at=float(n),
                                                 started_at=0.0))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=bump, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    with read_tx(engine) as conn:
        assert conn.execute(select(func.count()).select_from(Node)).scalar_one() == 8


def test_durable_write_is_synchronous_full_on_sqlite_and_only_that_one(tmp_path: Path) -> None:
    eng = make_engine(f"sqlite:///{tmp_path / 'jobs.db'}")
    upgrade(eng)
    sync = "PRAGMA synchronous"
    try:
        with write_tx(eng, durable=True) as conn:
            assert conn.exec_driver_sql(sync).scalar() == 2  # FULL
        with write_tx(eng) as conn:  # the same pooled connection, back at NORMAL
            assert conn.exec_driver_sql(sync).scalar() == 1
        with read_tx(eng) as conn:
            assert conn.exec_driver_sql(sync).scalar() == 1
    finally:
        eng.dispose()


def test_postgresql_reads_are_read_only_and_the_pool_forgets_it(pg_db: str) -> None:
    eng = make_engine(pg_db)
    upgrade(eng)
    try:
        with pytest.raises(DBAPIError, match="read-only transaction"), read_tx(eng) as conn:
            conn.execute(insert(Node).values(name="x", heartbeat_at=1.0, started_at=1.0))
        add_node(eng, "y")  # the same pooled connection writes again
        add_node(eng, "z", durable=True)
        with read_tx(eng) as conn:
            assert sorted(conn.execute(select(Node.name)).scalars()) == ["y", "z"]
    finally:
        eng.dispose()


# ---- one daemon per SQLite file (issue 9, defect 4) -------------------------------------------

HOLDER = """
import sys
from daemon.jobs.engine import acquire_instance_lock
lock = acquire_instance_lock(sys.argv[1])
print("held", flush=True)
sys.stdin.read()
"""


def test_instance_lock_names_the_holder_and_dies_with_it(tmp_path: Path) -> None:
    db = tmp_path / "jobs.db"
    url = f"sqlite:///{db}"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, url], cwd=REPO, text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(AlreadyRunning) as refused:
            acquire_instance_lock(url)
        message = str(refused.value)
        assert f"PID {holder.pid}" in message and str(db) in message
        assert "\n" not in message
        # Readers (status, retry, check) take no lock and keep working beside the daemon.
        eng = make_engine(url, create=False)
        upgrade(eng)
        add_node(eng, "beside")
        with read_tx(eng) as conn:
            assert conn.execute(select(Node.name)).scalar_one() == "beside"
        eng.dispose()

        holder.kill()  # SIGKILL: no cleanup of ours runs; the kernel drops the flock
        holder.wait(10)
        lock = acquire_instance_lock(url)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    assert lock is not None
    try:
        lock_file = db.with_name("jobs.db.lock")
        assert lock_file.read_text().strip() == str(os.getpid())
        assert lock_file.stat().st_mode & 0o777 == 0o600
        with pytest.raises(AlreadyRunning, match=f"PID {os.getpid()}"):
            acquire_instance_lock(url)  # a second open file in this very process: refused too
    finally:
        lock.close()
    acquire_instance_lock(url).close()  # type: ignore[union-attr]


def test_the_instance_lock_goes_with_the_file_not_the_name(tmp_path: Path) -> None:
    """Issue 28 item 8: a symlinked name shares the lock; a hard-linked one is refused, by the
    lock and by every opener, in one line naming the file."""
    db, alias, linked = tmp_path / "jobs.db", tmp_path / "alias.db", tmp_path / "linked.db"
    lock = acquire_instance_lock(f"sqlite:///{db}")
    assert lock is not None
    try:
        alias.symlink_to(db)
        with pytest.raises(AlreadyRunning, match=f"PID {os.getpid()}"):
            acquire_instance_lock(f"sqlite:///{alias}")
        os.link(db, linked)
        for name in (linked, db):
            url = f"sqlite:///{name}"
            with pytest.raises(DatabaseUnavailable, match="2 names") as refused:
                acquire_instance_lock(url)
            assert not isinstance(refused.value, AlreadyRunning)
            with pytest.raises(DatabaseUnavailable, match="hard link") as refused:
                make_engine(url, create=False)
            assert str(name) in str(refused.value) and "\n" not in str(refused.value)
        linked.unlink()
        make_engine(f"sqlite:///{db}", create=False).dispose()
    finally:
        lock.close()


def test_postgresql_takes_no_instance_lock_and_has_no_file_identity(pg_db: str) -> None:
    assert acquire_instance_lock(pg_db) is None
    assert db_identity(pg_db) is None
    assert check_writable(pg_db) is None


# ---- the database file's identity (issue 10, item 5) ------------------------------------------

def test_db_identity_changes_when_the_file_is_replaced_or_deleted(tmp_path: Path) -> None:
    db = tmp_path / "jobs.db"
    url = f"sqlite:///{db}"
    eng = make_engine(url)
    upgrade(eng)
    eng.dispose()
    before = db_identity(url)
    assert before is not None and before == db_identity(url)

    other = tmp_path / "restored.db"
    other.write_bytes(db.read_bytes())  # a backup restored over it: same content, new file
    os.replace(other, db)
    replaced = db_identity(url)
    assert replaced is not None and replaced != before

    db.unlink()
    assert db_identity(url) not in (before, replaced)


def test_check_writable_names_a_read_only_database(tmp_path: Path) -> None:
    db = tmp_path / "jobs.db"
    url = f"sqlite:///{db}"
    make_engine(url).dispose()
    assert check_writable(url) is None
    with immutable(db):  # read-only even for root, who ignores file modes
        reason = check_writable(url)
    assert reason is not None and str(db) in reason and "read-only" in reason
    assert "\n" not in reason


# ---- migrations: three processes at once on an empty database ---------------------------------

MIGRATOR = """
import sys
import alembic.command  # imported up front: the three start migrating at the same instant
from daemon.jobs.engine import current_revision, make_engine
from daemon.jobs.schema import upgrade
eng = make_engine(sys.argv[1])
eng.connect().close()
print("ready", flush=True)
sys.stdin.readline()
upgrade(eng)
print(current_revision(eng), flush=True)
"""


def test_three_nodes_migrating_an_empty_database_at_once_all_succeed(db_url: str) -> None:
    # PostgreSQL: the advisory lock makes two of them wait (without it, most runs fail on
    # "relation already exists"). SQLite: the write lock taken up front does the same.
    procs = [subprocess.Popen([sys.executable, "-c", MIGRATOR, db_url], cwd=REPO, text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE) for _ in range(3)]
    try:
        for p in procs:
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        results = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, (out, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, err
        assert out.strip() == SCHEMA_HEAD
    eng = make_engine(db_url)
    assert current_revision(eng) == SCHEMA_HEAD
    eng.dispose()


# ---- PostgreSQL URLs: the driver, libpq's environment, a restart ------------------------------

@pytest.fixture
def pw_role(pg_server: PgServer) -> Iterator[tuple[str, str]]:
    """A role that must give its password over TCP (the trusted one is `postgres`)."""
    name, password = f"pw_{os.getpid()}", "s3cret-Pa55"
    pg_server.execute(f"DROP ROLE IF EXISTS {name}")
    pg_server.execute(f"CREATE ROLE {name} LOGIN PASSWORD '{password}'")
    try:
        yield name, password
    finally:
        pg_server.execute(f"DROP ROLE IF EXISTS {name}")


def whoami(url: str) -> str:
    eng = make_engine(url)
    try:
        with read_tx(eng) as conn:
            return str(conn.execute(text("SELECT current_user")).scalar_one())
    finally:
        eng.dispose()


def test_postgresql_urls_use_psycopg_3_with_a_bounded_pool(pg_server: PgServer,
                                                           pg_db: str) -> None:
    for scheme in ("postgresql://", "postgresql+psycopg://", "postgres://"):
        url = pg_db.replace("postgresql://", scheme, 1)
        eng = make_engine(url)
        assert eng.dialect.driver == "psycopg"
        assert eng.pool.size() == PG_POOL_SIZE  # type: ignore[attr-defined]
        eng.dispose()
        assert whoami(url) == "postgres"


def test_libpq_environment_is_honoured(pg_server: PgServer, pg_db: str,
                                       pw_role: tuple[str, str], tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    role, password = pw_role
    url = pg_db.replace("postgres@", f"{role}@", 1)
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "absent"))
    with pytest.raises(OperationalError, match="password"):
        whoami(url)  # the test can fail: without a password this role is refused

    monkeypatch.setenv("PGPASSWORD", password)
    assert whoami(url) == role

    monkeypatch.delenv("PGPASSWORD")
    passfile = tmp_path / "pgpass"
    passfile.write_text(f"127.0.0.1:{pg_server.port}:*:{role}:{password}\n")
    passfile.chmod(0o600)  # libpq ignores a password file others can read
    monkeypatch.setenv("PGPASSFILE", str(passfile))
    assert whoami(url) == role

    # URL parameters reach libpq: this server has no TLS, so sslmode=require is refused.
    assert whoami(url + "?sslmode=disable") == role
    with pytest.raises(OperationalError, match="SSL"):
        whoami(url + "?sslmode=require")

    # A password in the URL works too, and is never shown.
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "absent"))
    with_password = url.replace(f"{role}@", f"{role}:{password}@", 1)
    assert whoami(with_password) == role
    assert password not in mask_url(with_password)


@pytest.mark.skipif(bool(unavailable()), reason=str(unavailable()))
def test_a_restarted_server_is_reconnected_by_the_pool(tmp_path: Path) -> None:
    server = start_postgres(tmp_path)
    try:
        eng = make_engine(server.create_db("restart"))
        upgrade(eng)
        add_node(eng, "before")
        server.restart()  # every pooled connection is now dead
        add_node(eng, "after")  # pre-ping replaces it at checkout: no error reaches us
        server.shutdown()
        with pytest.raises(OperationalError):
            add_node(eng, "while down")
        server.start()
        wait_for(server.running, 10, what="PostgreSQL back")
        with read_tx(eng) as conn:
            assert sorted(conn.execute(select(Node.name)).scalars()) == ["after", "before"]
        eng.dispose()
    finally:
        server.stop()
    assert not server.base.exists()


# ---- masked URLs ------------------------------------------------------------------------------

@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql://uplift:s3cret@db.lab:5432/uplift", "postgresql://uplift:***@db.lab:5432/uplift"),
    ("postgresql+psycopg://uplift:s3cret@db.lab/uplift?sslmode=require",
     "postgresql+psycopg://uplift:***@db.lab/uplift?sslmode=require"),
    ("postgresql://uplift@db.lab/uplift?password=s3cret&sslmode=verify-full",
     "postgresql://uplift@db.lab/uplift?password=***&sslmode=verify-full"),
    ("postgresql://uplift:p%40ss%3As3cret@db.lab/uplift", "postgresql://uplift:***@db.lab/uplift"),
    ("postgresql://uplift@db.lab/uplift", "postgresql://uplift@db.lab/uplift"),
    ("sqlite:////var/lib/uplift-capture/jobs.db", "sqlite:////var/lib/uplift-capture/jobs.db"),
    ("s3cret", "<database url>"),
])
def test_mask_url_never_shows_a_password(url: str, shown: str) -> None:
    assert mask_url(url) == shown
    assert "s3cret" not in mask_url(url)
