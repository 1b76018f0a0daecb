"""A share that hangs while one of its files is being uploaded (issue 29 item 5's last gap):
the upload thread blocks in the kernel reading the file, where no abort reaches it, and with
`[upload] concurrency = 1` it held the only slot: the other folder's movie waited as long as
the share did. The supervisor lets the stuck slot go (work/stuck.py): the other folder
uploads meanwhile, and once the share answers its movie is uploaded exactly once and ends
done; SIGTERM still stops the daemon."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

from support import (
    Proc,
    Sandbox,
    jobs_by_name,
    make_movie,
    sha256,
    start_daemon,
    wait_for,
    write_config,
)

STOP_WITHIN = 20.0  # shutdown_timeout is 5 s (write_config)
RATE = 1_500_000  # bytes/s the sandbox reads uploads at: the share's movie takes ~20 s


def test_a_share_that_hangs_mid_upload_holds_up_no_slot(
        tmp_path: Path, sandbox: Sandbox, procs: list[Proc],
        fuse_share: tuple[Path, subprocess.Popen[bytes]]) -> None:
    share, server = fuse_share
    # Written to the share's source (not through FUSE): nothing of it is in the mount's cache.
    big = make_movie(tmp_path / "share-source" / "jane" / "big.mov", frames=50,
                     width=1280, height=720)
    assert big.stat().st_size > 15 * RATE
    local = tmp_path / "captures"
    (local / "jane").mkdir(parents=True)
    config = write_config(tmp_path / "config.toml", watch=local, db=tmp_path / "jobs.db",
                          base_url=sandbox.base_url, upload="concurrency = 1\nstall_seconds = 5",
                          extra=f'[[watch]]\npath = "{share}"\n')
    sandbox.faults(upload_rate=RATE)
    daemon = start_daemon(tmp_path, config)
    procs.append(daemon)
    try:
        # Freeze the share while its big movie is being read and sent (a few MB in).
        wait_for(lambda: jobs_by_name(config).get("big.mov", {}).get("bytes_sent", 0) > 3 * RATE,
                 90, what="the share's big movie a few MB into its upload")
        server.send_signal(signal.SIGSTOP)  # every call on the share hangs from now on
        make_movie(local / "jane" / "after.mov")
        wait_for(lambda: sandbox.uploads_for("after.mov"), 90,
                 what="the other folder's movie uploaded while the share's upload is stuck")
        assert daemon.has_event("upload.abandoned", path=str(share / "jane" / "big.mov"))
        assert daemon.has_event("worker.slot_replaced")
        assert not sandbox.uploads_for("big.mov")
    finally:
        server.send_signal(signal.SIGCONT)  # before any stop: a FUSE close waits on it

    # The share answers again: its movie is sent again, whole, once, and ends done.
    wait_for(lambda: jobs_by_name(config)["big.mov"]["state"] == "done", 120,
             what="the share's movie done once the share answers")
    wait_for(lambda: daemon.has_event("worker.stale_thread_returned"), 30,
             what="the stale thread to return and end")
    uploads = sandbox.uploads_for("big.mov")
    assert len(uploads) == 1, uploads
    assert uploads[0]["sha256"] == sha256(big)
    assert len(sandbox.uploads_for("after.mov")) == 1

    assert daemon.stop(timeout=STOP_WITHIN) == 0, daemon.log_path.read_text()[-3000:]
    assert daemon.has_event("daemon.stopped")
