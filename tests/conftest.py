"""Fixtures shared by every tier. tests/ is on sys.path (pytest's rootdir conftest), so test
modules import helpers with `from support import ...`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pgserver import pg_db, pg_server, pg_url  # noqa: F401 (fixtures: a real PostgreSQL)
from support import Sandbox
from tls_proxy import PrivateCA, make_private_ca
from webhooks import Receiver


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
