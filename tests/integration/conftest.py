"""Fixtures of the integration tier: one sandbox server per module, reset for every test, and a
watched folder with its loaded config and open job table (`db_url`, a fresh database on each
dialect, is in tests/conftest.py: the end-to-end tier uses it too)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support import ATHLETE, TOKEN, write_config

from daemon import config as config_mod
from daemon.config import Config
from daemon.jobs.store import Store
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


@pytest.fixture
def watched_store(tmp_path: Path) -> Iterator[tuple[Config, Store, Path]]:
    """A config watching tmp_path/captures (an athlete folder ATHLETE in it, settle 0.2 s),
    loaded, and its job table (SQLite) open: (config, store, captures)."""
    captures = tmp_path / "captures"
    (captures / ATHLETE).mkdir(parents=True)
    cfg = config_mod.load(str(write_config(tmp_path / "c.toml", watch=captures,
                                           db=tmp_path / "jobs.db", settle=0.2)))
    store = Store.open(cfg.database_url)
    yield cfg, store, captures
    store.close()
