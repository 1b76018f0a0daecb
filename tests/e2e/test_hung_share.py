"""A watch folder on a share that hangs (issue 29 item 5): a FUSE mount whose server is frozen
with SIGSTOP hangs every call on it, as a hard-mounted NFS share whose server stopped
answering does. The daemon goes on with its other folder, `status` answers and names the
hung one, `roots accept` of it answers, and SIGTERM ends the daemon within its stop
timeout."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import Proc, Sandbox, cli, make_movie, start_daemon, wait_for, write_config

SERVER = Path(__file__).resolve().parent.parent / "fuse_passthrough.py"
STOP_WITHIN = 20.0  # shutdown_timeout is 5 s (write_config); systemd's TimeoutStopSec is 45 s


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


def test_a_hung_share_holds_up_neither_the_other_folder_nor_status_nor_sigterm(
        tmp_path: Path, sandbox: Sandbox, procs: list[Proc],
        fuse_share: tuple[Path, subprocess.Popen[bytes]]) -> None:
    share, server = fuse_share
    local = tmp_path / "captures"
    (local / "jane").mkdir(parents=True)
    config = write_config(tmp_path / "config.toml", watch=local, db=tmp_path / "jobs.db",
                          base_url=sandbox.base_url,
                          extra=f'[[watch]]\npath = "{share}"\n')
    daemon = start_daemon(tmp_path, config)
    procs.append(daemon)
    # The share works: its movie is uploaded (read through FUSE) before the server freezes.
    wait_for(lambda: sandbox.uploads_for("before.mov"), 60, what="the share's movie uploaded")
    # ... and closed by the daemon: the upload holds the file open until the storage answers,
    # and closing a FUSE file sends a FLUSH the kernel waits out even through SIGKILL. Frozen
    # before that close (a loaded machine), the process could never end: not what this tests.
    wait_for(lambda: daemon.has_event("upload.done"), 60, what="the share's upload recorded")

    server.send_signal(signal.SIGSTOP)  # every call on the share hangs from now on
    frozen_at = time.monotonic()
    time.sleep(6)  # past a health tick (5 s): today's main thread is now stuck in its stat
    make_movie(local / "jane" / "after.mov")
    wait_for(lambda: sandbox.uploads_for("after.mov"), 60,
             what="the other folder's movie uploaded while the share hangs")

    # `status` answers, and names the folder that does not answer.
    def hung_named() -> bool:
        out = cli("status", "--config", str(config), timeout=20)
        assert out.returncode == 0, out.stderr
        return f"{share} is not answering" in out.stdout

    wait_for(hung_named, 40, what="status to name the hung share")
    assert daemon.has_event("watch.root_not_answering", root=str(share))
    assert time.monotonic() - frozen_at < 120
    # `roots accept` of it answers too (it resolved and stat'ed the folder directly: hung).
    out = cli("roots", "accept", str(share), "--config", str(config), timeout=20)
    assert out.returncode == 1 and "is not answering" in out.stdout, out

    # SIGTERM ends the daemon within its stop timeout, as on the normal path.
    started = time.monotonic()
    assert daemon.stop(timeout=STOP_WITHIN) == 0, daemon.log_path.read_text()[-3000:]
    assert time.monotonic() - started < STOP_WITHIN
    assert daemon.has_event("daemon.stopped")
