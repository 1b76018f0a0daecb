"""A watch folder on a share that hangs (issue 29 item 5): a FUSE mount whose server is frozen
with SIGSTOP hangs every call on it, as a hard-mounted NFS share whose server stopped
answering does. The daemon goes on with its other folder, `status` answers and names the
hung one, `roots accept` of it answers, and SIGTERM ends the daemon within its stop
timeout."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

from support import Proc, Sandbox, cli, make_movie, start_daemon, wait_for, write_config

STOP_WITHIN = 20.0  # shutdown_timeout is 5 s (write_config); systemd's TimeoutStopSec is 45 s


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
