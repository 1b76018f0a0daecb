"""Fixtures of the end-to-end tier: the sandbox over TLS with a private CA, a forward proxy
(tinyproxy) in front of it, a PostgreSQL server of a test's own, a FUSE share a test may
freeze, and the daemons a test started killed at its end."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pgserver
import pytest
from support import Proc, Sandbox, make_movie, wait_for
from tls_proxy import PrivateCA, Tinyproxy

SERVER = Path(__file__).resolve().parent.parent / "fuse_passthrough.py"


def _is_mount(path: Path) -> bool:
    return f" {path} " in Path("/proc/self/mounts").read_text()


@pytest.fixture
def fuse_share(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen[bytes]]]:
    """A folder served through FUSE by a server of our own (a subprocess the test may freeze);
    yields (mount point, server). Teardown thaws or kills the server and unmounts lazily
    before the temporary folders go."""
    if not os.path.exists("/dev/fuse"):
        pytest.skip("no /dev/fuse on this machine: no FUSE share to freeze")
    pytest.importorskip("fuse", reason="fusepy (the dev extra) and libfuse2 are needed")
    source, mountpoint = tmp_path / "share-source", tmp_path / "share"
    (source / "jane").mkdir(parents=True)
    make_movie(source / "jane" / "before.mov")
    mountpoint.mkdir()
    log = open(tmp_path / "fuse.log", "wb")  # noqa: SIM115 - lives as long as the server
    server = subprocess.Popen([sys.executable, str(SERVER), str(source), str(mountpoint)],
                              stdout=log, stderr=subprocess.STDOUT)
    log.close()
    try:
        wait_for(lambda: _is_mount(mountpoint) or server.poll() is not None, 20,
                 what="the FUSE share to be mounted")
        assert server.poll() is None, (tmp_path / "fuse.log").read_text()
        yield mountpoint, server
    finally:
        server.send_signal(signal.SIGCONT)
        server.kill()
        server.wait()
        subprocess.run(["umount", "-l", str(mountpoint)], capture_output=True)


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
