"""`alembic upgrade head` gives exactly the models' schema on SQLite and on PostgreSQL, and the
wheel ships migrations."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from daemon.jobs.engine import SCHEMA_HEAD, make_engine
from daemon.jobs.models import Base
from daemon.jobs.schema import upgrade

REPO = Path(__file__).resolve().parents[2]


def test_upgrade_head_matches_the_models(db_url: str) -> None:
    engine = make_engine(db_url)
    upgrade(engine)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}),
                                Base.metadata)
    engine.dispose()
    assert diff == []


def test_schema_head_constant_is_alembics_head(db_url: str) -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from daemon.jobs.engine import SCHEMA_HEAD, current_revision, migrations_dir

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    assert ScriptDirectory.from_config(cfg).get_current_head() == SCHEMA_HEAD
    engine = make_engine(db_url)
    assert current_revision(engine) is None
    upgrade(engine)
    assert current_revision(engine) == SCHEMA_HEAD
    engine.dispose()


def test_upgrade_is_idempotent(db_url: str) -> None:
    engine = make_engine(db_url)
    upgrade(engine)
    upgrade(engine)
    engine.dispose()


def test_upgrade_keeps_existing_jobs(db_url: str) -> None:
    # A station upgraded in place: its jobs survive 0003 with their fleet identity filled in.
    engine = make_engine(db_url)
    upgrade(engine, "0002")
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO jobs (path, root, size, mtime_ns, state, force, attempts,"
            " next_attempt_at, bytes_sent, created_at, updated_at, refusals)"
            " VALUES ('/cap/jane/a.mov', '/cap', 5000000000, 1700000000123456789, 'done',"
            " false, 1, 0, 0, 1.5, 2.5, 0)"))
    upgrade(engine)
    with engine.connect() as conn:
        row = conn.execute(text("SELECT watch, rel_path, owner, node, claim_no, size, mtime_ns"
                                " FROM jobs")).one()
    engine.dispose()
    assert tuple(row) == ("/cap", "jane/a.mov", "", None, 0, 5_000_000_000,
                          1_700_000_000_123_456_789)


def test_wheel_contains_the_migrations(tmp_path: Path) -> None:
    # Build from a clean copy: setuptools reuses an in-tree build/ folder, stale files and all.
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    for name in ("daemon", "migrations"):
        shutil.copytree(REPO / name, src / name,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                    "-q", "-w", str(tmp_path), str(src)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("uplift_capture_daemon-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "daemon/migrations/env.py" in names
    assert "daemon/migrations/script.py.mako" in names
    shipped = sorted(n for n in names if n.startswith("daemon/migrations/versions/0"))
    assert shipped == sorted(f"daemon/migrations/versions/{p.name}"
                             for p in (REPO / "migrations" / "versions").glob("0*.py"))
    assert not any(n.startswith(("tests/", "migrations/")) for n in names)

    # Installed from the wheel (not this checkout), the daemon finds its migrations.
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target",
                    str(target), str(wheel)], check=True, capture_output=True)
    (tmp_path / "w").mkdir()
    config = tmp_path / "c.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{tmp_path}/fresh.db"\n'
                      f'[[watch]]\npath = "{tmp_path}/w"\n')
    env = {**os.environ, "PYTHONPATH": str(target)}
    where = subprocess.run([sys.executable, "-c", "import daemon; print(daemon.__file__)"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    assert where.stdout.startswith(str(target))
    out = subprocess.run([sys.executable, "-m", "daemon", "db", "upgrade", "--config",
                          str(config)], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    engine = make_engine(f"sqlite:///{tmp_path}/fresh.db")
    with engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == SCHEMA_HEAD
    engine.dispose()
