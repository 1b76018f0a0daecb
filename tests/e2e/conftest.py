"""Fixtures of the end-to-end tier: the sandbox over TLS with a private CA, a forward proxy
(tinyproxy) in front of it, a PostgreSQL server of a test's own, and the daemons a test started
killed at its end."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pgserver
import pytest
from support import Proc, Sandbox
from tls_proxy import PrivateCA, Tinyproxy


@pytest.fixture
def tls_box(tmp_path: Path, pki: PrivateCA) -> Iterator[Sandbox]:
    box = Sandbox(tmp_path / "sandbox", tls=(pki.cert, pki.key), ca=pki.ca_pem).start()
    assert box.base_url.startswith("https://")
    try:
        yield box
    finally:
        box.stop()


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[Tinyproxy]:
    folder = tmp_path / "proxy"
    folder.mkdir()
    p = Tinyproxy(folder).start()
    try:
        yield p
    finally:
        p.stop()


@pytest.fixture
def own_pg(tmp_path: Path) -> Iterator[pgserver.PgServer]:
    """A PostgreSQL server for this test alone, which it may restart or reconfigure (skipped
    with the reason where PostgreSQL is not installed)."""
    if pgserver.unavailable():
        pytest.skip(pgserver.unavailable())
    server = pgserver.start_postgres(tmp_path)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    """The daemons a test starts, appended here: whatever is left running is killed at its end
    (before the sandbox it uses stops, when the test asks for `sandbox` first)."""
    started: list[Proc] = []
    yield started
    for p in started:
        p.kill()
