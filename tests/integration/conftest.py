"""Fixtures of the integration tier: one sandbox server per module, reset for every test, and a
database URL on each dialect."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support import TOKEN

from daemon.sandbox import server


@pytest.fixture(scope="module")
def shared_box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[server.SandboxServer]:
    srv = server.start(tmp_path_factory.mktemp("box"), token=TOKEN)
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def box(shared_box: server.SandboxServer) -> server.SandboxServer:
    """The module's sandbox with no faults, no session groups and `support.TOKEN` again."""
    shared_box.state.faults = server.Faults()
    shared_box.state.token = TOKEN
    shared_box.state.groups.clear()
    return shared_box


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database on each dialect: a SQLite file, then a new database on a real PostgreSQL
    server (skipped with the reason when PostgreSQL is not installed)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'jobs.db'}"
    return str(request.getfixturevalue("pg_db"))
