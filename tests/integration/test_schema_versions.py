"""Only `run` and `db upgrade` change the job table's schema (issue 19, item 12): every other
command reads an older table as it is, or refuses it in one line; a table newer than the code is
one plain line for every command, `run` included. On a real SQLite file and a real PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text
from support import TOKEN, cli, set_config_key, write_config

from daemon import cli as cli_mod
from daemon.jobs import schema
from daemon.jobs.engine import SCHEMA_HEAD, current_revision, make_engine
from daemon.jobs.schema import upgrade
from daemon.jobs.store import Store

REPO = Path(__file__).resolve().parents[2]
NEWER = f"{int(SCHEMA_HEAD) + 1:04d}"  # a revision a later version of uplift-capture adds
RESTART = "the service has not upgraded the job table yet: restart it"
READERS = [["status"], ["status", "--json"], ["retry", "--failed"], ["pause"], ["resume"],
           ["check", "--offline"]]


def config_for(tmp_path: Path, db_url: str) -> Path:
    (tmp_path / "w").mkdir(exist_ok=True)
    config = write_config(tmp_path / "c.toml", watch=tmp_path / "w", db=tmp_path / "unused.db")
    return set_config_key(config, "database", "url", json.dumps(db_url))


def at(db_url: str, revision: str, job: bool = True) -> None:
    """The table as a daemon of that revision left it, with a job in it (0002's columns)."""
    eng = make_engine(db_url)
    upgrade(eng, revision)
    with eng.begin() as conn:
        conn.execute(text(
            "INSERT INTO jobs (path, root, size, mtime_ns, state, force, attempts,"
            " next_attempt_at, bytes_sent, created_at, updated_at)"
            " VALUES ('/cap/jane/a.mov', '/cap', 5, 1, 'failed', false, 1, 0, 0, 1.5, 2.5)"
            if job else "SELECT 1"))
    eng.dispose()


def revision_of(db_url: str) -> str | None:
    eng = make_engine(db_url, create=False)
    try:
        return current_revision(eng)
    finally:
        eng.dispose()


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli_mod.main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_no_command_but_run_migrates_an_older_table(db_url: str, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    # Before: `status` (and retry, pause, check) upgraded it, under the old daemon still running.
    at(db_url, "0002")  # no fleet columns yet: this code's queries of jobs cannot run on it
    config = config_for(tmp_path, db_url)
    for args in READERS:
        code, out, err = run_cli(capsys, *args, "--config", str(config))
        assert revision_of(db_url) == "0002", args
        assert "Traceback" not in out + err
        if code != 0 and args[0] != "check":  # what it cannot read: one line, what to do
            assert err.count("\n") == 1 and RESTART in err, (args, err)
            assert "0002" in err and SCHEMA_HEAD in err
    Store.open(db_url).close()  # nor does any other caller that does not ask to migrate
    assert revision_of(db_url) == "0002"
    # `status` reads the columns the table has (those added later read as nothing) or, where
    # it cannot (a fleet's table from before the fleet columns), says so in one line.
    code, out, err = run_cli(capsys, "status", "--config", str(config))
    assert (code == 0 and "Jobs: 1 pending" in out) or (code == 1 and RESTART in err), (out, err)
    code, out, _ = run_cli(capsys, "check", "--offline", "--config", str(config))
    assert code == 1 and f"FAIL {RESTART}" in out
    # What it can do on the older table, it does: the pause is stored. Not a retry (issue
    # 30): while the service upgrades the table, `status` says "restart it" and a retry
    # written to the old layout is refused the same way.
    code, _, _ = run_cli(capsys, "pause", "--config", str(config))
    assert code == 0
    code, _, err = run_cli(capsys, "retry", "--failed", "--config", str(config))
    assert code == 1 and RESTART in err and err.count("\n") == 1
    # The service's own start (and `db upgrade`) migrates, keeping the job.
    code, out, _ = run_cli(capsys, "db", "upgrade", "--config", str(config))
    assert code == 0 and revision_of(db_url) == SCHEMA_HEAD
    code, out, _ = run_cli(capsys, "status", "--json", "--all", "--config", str(config))
    data = json.loads(out)
    # `retry --failed` above was refused on the older table: the failed job is still failed.
    assert code == 0 and [j["state"] for j in data["jobs"]] == ["failed"]
    code, out, _ = run_cli(capsys, "retry", "--failed", "--config", str(config))
    assert code == 0 and "requeued 1 job(s)" in out


def test_a_command_that_needs_a_newer_table_refuses_it(db_url: str, tmp_path: Path) -> None:
    at(db_url, "0002")
    with pytest.raises(schema.SchemaBehind, match=RESTART) as refused:
        Store.open(db_url, migrate=False, need="0003")
    assert "0002" in str(refused.value) and "0003" in str(refused.value)
    store = Store.open(db_url, migrate=False, need="0002")  # old enough: it opens
    try:
        assert not schema.has(store.engine, "0003") and schema.has(store.engine, "0002")
        with pytest.raises(schema.SchemaBehind, match=RESTART):
            schema.require(store.engine, "0003")
    finally:
        store.close()
    assert revision_of(db_url) == "0002"
    # An empty database has nothing running on it: a command lays the table out.
    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    Store.open(fresh, migrate=False, need=SCHEMA_HEAD).close()
    assert revision_of(fresh) == SCHEMA_HEAD


def test_a_table_newer_than_the_code_is_one_plain_line(db_url: str, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    # Before: `run` and `db upgrade` printed Alembic's 40-line "Can't locate revision".
    at(db_url, SCHEMA_HEAD, job=False)
    eng = make_engine(db_url)
    with eng.begin() as conn:
        conn.execute(text(f"UPDATE alembic_version SET version_num = '{NEWER}'"))
    eng.dispose()
    config = config_for(tmp_path, db_url)
    for args in [*READERS, ["db", "upgrade"]]:
        code, out, err = run_cli(capsys, *args, "--config", str(config))
        assert code != 0, args
        line = err if args[0] != "check" else next(x for x in out.splitlines() if "FAIL" in x)
        assert len(line.strip().splitlines()) == 1 and "Traceback" not in out + err, args
        assert NEWER in line and SCHEMA_HEAD in line and "install that version" in line
    started = cli("run", "--config", str(config), env={"UPLIFT_API_TOKEN": TOKEN})
    assert started.returncode == 1 and started.stdout == ""
    assert len(started.stderr.strip().splitlines()) == 1, started.stderr
    assert NEWER in started.stderr and SCHEMA_HEAD in started.stderr
    assert revision_of(db_url) == NEWER


OPEN = """
import sys
from daemon.jobs.store import Store
Store.open(sys.argv[1], migrate=sys.argv[2] == "run").close()
print("alembic" in sys.modules)
"""


def test_opening_a_current_table_does_not_import_alembic(tmp_path: Path) -> None:
    # Alembic costs several MiB for the life of the daemon: only a migration imports it.
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    at(url, "head", job=False)
    for how in ("run", "status"):
        out = subprocess.run([sys.executable, "-c", OPEN, url, how], cwd=REPO,
                             capture_output=True, text=True, check=True)
        assert out.stdout.strip() == "False", how
