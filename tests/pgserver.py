"""A real PostgreSQL server for tests: initdb into a temp dir, pg_ctl on a free loopback port.

We run as root in CI and PostgreSQL refuses to run as root, so its binaries run as the
`postgres` user (`runuser -u postgres --`). Durability is off (fsync, synchronous_commit): a
test server that loses its last commits on a power cut costs nothing and saves seconds.

Fixtures (imported by tests/conftest.py): `pg_server` (session; skipped with the reason when
PostgreSQL is not installed), `pg_url` (session; its maintenance database) and `pg_db` (a fresh
database per test). `start_postgres(tmpdir)` is for tests that stop or restart the server.

Authentication: unix socket and TCP as `postgres` are trusted; any other role must give its
password over TCP (scram), so tests can exercise PGPASSWORD and the password file.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import re
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import free_port

INSTALL_HINT = "apt-get update && apt-get install -y postgresql"
HBA = """\
local all all trust
host all postgres 127.0.0.1/32 trust
host all all 127.0.0.1/32 scram-sha-256
"""
SETTINGS = """
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = '{sockdir}'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
log_min_messages = warning
"""


def find_bindir() -> Path | None:
    """The newest installed PostgreSQL's bin dir (Debian: /usr/lib/postgresql/<v>/bin)."""
    found = [Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/pg_ctl")]
    found.sort(key=lambda p: int(re.sub(r"\D", "", p.parent.name) or 0))
    if found:
        return found[-1]
    pg_ctl = shutil.which("pg_ctl")
    return Path(pg_ctl).parent if pg_ctl else None


def unavailable() -> str | None:
    """Why a PostgreSQL test server cannot start here, else None."""
    if find_bindir() is None:
        return f"PostgreSQL is not installed (CI installs it: {INSTALL_HINT})"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (pip install -e '.[dev]')"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "no `postgres` user to run PostgreSQL as (root is refused)"
    return None


class PgServer:
    """One PostgreSQL cluster in its own directory, owned by the user it runs as."""

    def __init__(self, base: Path, bindir: Path):
        self.base, self.bindir = base, bindir
        self.data, self.log = base / "data", base / "server.log"
        self.port = 0
        self._names = itertools.count(1)

    # -- running the server's binaries ----------------------------------------------------
    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        # A clean environment: the caller's PGHOST/PGPORT must not steer the server tools.
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "LANG": "C"}
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=self.base,
                             timeout=120)
        if check and out.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(args)} failed ({out.returncode}): "
                               f"{out.stderr.strip() or out.stdout.strip()}\n{log}")
        return out

    def init(self) -> PgServer:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E",
                  "UTF8", "--locale=C", "--no-sync")
        (self.data / "pg_hba.conf").write_text(HBA)
        return self

    def _configure(self, port: int) -> None:
        conf = self.data / "postgresql.conf"
        text = conf.read_text().split("\n# --- tests ---\n")[0]
        conf.write_text(text + "\n# --- tests ---\n"
                        + SETTINGS.format(port=port, sockdir=self.base))

    def start(self) -> PgServer:
        """Start; again after shutdown() on the same port, so URLs handed out stay valid."""
        first = not self.port
        for _ in range(3 if first else 1):
            if first:  # another process may take a free port before us: then pick again
                self.port = free_port()
                self._configure(self.port)
            out = self._run("pg_ctl", "start", "-w", "-t", "60", "-D", str(self.data),
                            "-l", str(self.log), check=False)
            if out.returncode == 0:
                return self
        raise RuntimeError(f"PostgreSQL did not start: {out.stderr.strip()}\n"
                           f"{self.log.read_text(errors='replace')[-2000:]}")

    def shutdown(self, mode: str = "fast") -> None:
        """Stop the server, keeping its data (start() brings it back on the same port)."""
        self._run("pg_ctl", "stop", "-w", "-t", "60", "-m", mode, "-D", str(self.data),
                  check=False)

    def restart(self, mode: str = "fast") -> None:
        """Stop and start on the same port: clients see their connections drop."""
        self.shutdown(mode)
        self.start()

    def stop(self) -> None:
        """Stop the server and remove its files."""
        self.shutdown("immediate")
        shutil.rmtree(self.base, ignore_errors=True)

    def reap_with(self, pid: int) -> None:
        """Stop the server and remove its files once process `pid` is gone, even when it is
        killed before its fixtures finalize (a CI timeout), so no postgres outlives a run."""
        pg_ctl = [str(self.bindir / "pg_ctl"), "stop", "-m", "immediate", "-D", str(self.data)]
        if os.geteuid() == 0:
            pg_ctl = ["runuser", "-u", "postgres", "--", *pg_ctl]
        script = (f"while kill -0 {pid} 2>/dev/null; do sleep 1; done; "
                  f"if [ -d {shlex.quote(str(self.data))} ]; then {shlex.join(pg_ctl)}; "
                  f"rm -rf {shlex.quote(str(self.base))}; fi")
        subprocess.Popen(["sh", "-c", script], start_new_session=True,
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)

    def running(self) -> bool:
        return self._run("pg_ctl", "status", "-D", str(self.data), check=False).returncode == 0

    # -- databases and roles ----------------------------------------------------------------
    def url(self, dbname: str = "postgres", user: str = "postgres",
            password: str | None = None) -> str:
        auth = f"{user}:{password}" if password is not None else user
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{dbname}"

    def execute(self, sql: str, dbname: str = "postgres") -> None:
        """Run `sql` as the superuser, in autocommit (CREATE DATABASE needs it)."""
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres",
                             dbname=dbname, autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql)

    def create_db(self, name: str | None = None) -> str:
        """A new empty database; returns its URL."""
        name = name or f"t{os.getpid()}_{next(self._names)}"
        # FILE_COPY: with fsync off it is a plain directory copy, faster than WAL_LOG.
        self.execute(f'CREATE DATABASE "{name}" STRATEGY = FILE_COPY')
        return self.url(name)

    def drop_db(self, name: str) -> None:
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _base_dir(tmpdir: Path | str | None) -> Path:
    """A fresh directory the server's user can reach. pytest's tmp dirs sit under a 0700
    folder of root's, which `postgres` cannot traverse: then fall back to the system temp."""
    where = Path(tmpdir) if tmpdir is not None else None
    base = Path(tempfile.mkdtemp(prefix="uplift-pg-", dir=where))
    if os.geteuid() == 0:
        pg = pwd.getpwnam("postgres")
        os.chown(base, pg.pw_uid, pg.pw_gid)
        probe = subprocess.run(["runuser", "-u", "postgres", "--", "test", "-w", str(base)],
                               capture_output=True)
        if probe.returncode != 0 and where is not None:
            shutil.rmtree(base, ignore_errors=True)
            return _base_dir(None)
    os.chmod(base, 0o700)
    return base


def start_postgres(tmpdir: Path | str | None = None) -> PgServer:
    """A running PostgreSQL of its own (call .stop() when done). Raises RuntimeError with the
    reason when PostgreSQL is not available; tests skip on `unavailable()` first."""
    reason = unavailable()
    if reason:
        raise RuntimeError(reason)
    bindir = find_bindir()
    assert bindir is not None
    server = PgServer(_base_dir(tmpdir), bindir)
    try:
        server.init().start()
        server.reap_with(os.getpid())
        return server
    except BaseException:
        server.stop()
        raise


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    reason = unavailable()
    if reason:
        pytest.skip(reason)
    server = start_postgres()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def pg_url(pg_server: PgServer) -> str:
    """The server's maintenance database (`postgres`): create, don't use, test databases."""
    return pg_server.url()


@pytest.fixture
def pg_db(pg_server: PgServer) -> Iterator[str]:
    """The URL of a fresh, empty database for this test, dropped afterwards."""
    url = pg_server.create_db()
    try:
        yield url
    finally:
        pg_server.drop_db(url.rsplit("/", 1)[1])
