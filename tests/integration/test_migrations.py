"""`alembic upgrade head` gives exactly the models' schema, and the wheel ships migrations."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from daemon.jobs.engine import make_engine, upgrade
from daemon.jobs.models import Base

REPO = Path(__file__).resolve().parents[2]


def test_upgrade_head_matches_the_models(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'jobs.db'}")
    upgrade(engine)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}),
                                Base.metadata)
    engine.dispose()
    assert diff == []


def test_upgrade_is_idempotent(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'jobs.db'}")
    upgrade(engine)
    upgrade(engine)
    engine.dispose()


def test_wheel_contains_the_migrations(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                    "-q", "-w", str(tmp_path), str(REPO)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("uplift_capture_daemon-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "daemon/migrations/env.py" in names
    assert "daemon/migrations/script.py.mako" in names
    assert any(n.startswith("daemon/migrations/versions/0001") for n in names)
    assert not any(n.startswith(("tests/", "migrations/")) for n in names)
