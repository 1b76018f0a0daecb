"""Fixtures shared by every tier. tests/ is on sys.path (pytest's rootdir conftest), so test
modules import helpers with `from support import ...`."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from pgserver import pg_db, pg_server, pg_url  # noqa: F401 (fixtures: a real PostgreSQL)
from support import Sandbox
from tls_proxy import PrivateCA, make_private_ca
from webhooks import Receiver

# Property-based, stateful and fuzz tests live in files named test_*_props.py. `make test` (CI)
# runs them with a bounded number of examples from a fixed seed, so a run on a clean clone is
# repeatable and a red one is a real change; `make fuzz` searches the same files far longer, at
# random, and what it finds becomes an explicit example.
settings.register_profile("ci", max_examples=60, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("fuzz", max_examples=20_000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    box = Sandbox(tmp_path / "sandbox").start()
    try:
        yield box
    finally:
        box.stop()


@pytest.fixture
def pki(tmp_path: Path) -> PrivateCA:
    """A private CA and a certificate for 127.0.0.1 signed by it (tls_proxy.make_private_ca)."""
    return make_private_ca(tmp_path / "pki")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver on loopback (webhooks.Receiver)."""
    r = Receiver()
    try:
        yield r
    finally:
        r.close()


@pytest.fixture
def movie_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("movies")


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database on each dialect: a SQLite file, then a new database on a real PostgreSQL
    server (skipped with the reason when PostgreSQL is not installed)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'jobs.db'}"
    return str(request.getfixturevalue("pg_db"))
