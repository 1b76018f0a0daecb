"""`run --sandbox` (what `make run` starts): the daemon and the built-in sandbox in one
process, no credentials, everything written under the config's folder."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from support import ATHLETE, Proc, make_movie, sha256, status, wait_for, write_config


def test_run_sandbox_uploads_a_dropped_file_without_credentials(tmp_path: Path) -> None:
    captures = tmp_path / "captures"
    (captures / ATHLETE).mkdir(parents=True)
    config = write_config(tmp_path / "config.toml", watch=captures, db=tmp_path / "state/jobs.db",
                          extra='[sandbox]\ndata_dir = "box"')
    env = {k: v for k, v in os.environ.items() if k != "UPLIFT_API_TOKEN"}
    daemon = Proc(["run", "--sandbox", "--config", str(config)], tmp_path / "daemon.log")
    daemon.env = env
    daemon.start()
    try:
        wait_for(lambda: daemon.has_event("daemon.ready"), 30, what="daemon.ready")
        movie = make_movie(tmp_path / "swing-001.mov", frames=8)
        (captures / ATHLETE / "swing-001.mov").write_bytes(movie.read_bytes())
        job = wait_for(lambda: next((j for j in status(config)["jobs"]
                                     if j["state"] == "done"), None), 30, what="done")
        received = tmp_path / "box" / "received" / job["session_id"] / "swing-001.mov"
        assert sha256(received) == sha256(movie)
        assert daemon.has_event("upload.done", job_id=job["id"])
        # The database is private to the service user.
        assert (tmp_path / "state" / "jobs.db").stat().st_mode & 0o777 == 0o600
        daemon.signal(signal.SIGTERM)
        assert daemon.popen is not None and daemon.popen.wait(30) == 0
    finally:
        daemon.kill()
