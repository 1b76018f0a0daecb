"""`run --sandbox` (what `make run` starts): the daemon and the built-in sandbox in one
process, no credentials, everything written under the config's folder."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from support import (
    ATHLETE,
    Proc,
    cli,
    immutable,
    make_movie,
    sha256,
    status,
    wait_for,
    write_config,
)


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


def test_run_sandbox_with_the_packaged_layout_writes_to_the_state_folder(tmp_path: Path) -> None:
    """Issue 30: the config in a folder the service cannot write (/etc/uplift-capture) and no
    [sandbox] data_dir: the sandbox's data goes beside the job table, not beside the config
    (a traceback before); a data_dir that cannot be written is one line naming it."""
    etc, state = tmp_path / "etc", tmp_path / "state"
    etc.mkdir()
    state.mkdir()
    captures = tmp_path / "captures"
    (captures / ATHLETE).mkdir(parents=True)
    config = write_config(etc / "config.toml", watch=captures, db=state / "jobs.db")
    env = {k: v for k, v in os.environ.items() if k != "UPLIFT_API_TOKEN"}
    with immutable(etc):
        daemon = Proc(["run", "--sandbox", "--config", str(config)], tmp_path / "daemon.log")
        daemon.env = env
        daemon.start()
        try:
            wait_for(lambda: daemon.has_event("daemon.ready") or daemon.popen.poll() is not None,
                     30, what="daemon.ready")
            assert daemon.popen is not None and daemon.popen.poll() is None, \
                (tmp_path / "daemon.log").read_text()[-2000:]
            assert (state / "sandbox-data" / "endpoint.json").exists()
            daemon.signal(signal.SIGTERM)
            assert daemon.popen.wait(30) == 0
        finally:
            daemon.kill()
    set_box = config.read_text() + f'[sandbox]\ndata_dir = "{etc / "box"}"\n'
    config.write_text(set_box)
    with immutable(etc):
        done = cli("run", "--sandbox", "--config", str(config), env=env, timeout=30)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stdout + done.stderr, done.stderr[-2000:]
    line = [x for x in done.stderr.splitlines() if str(etc / "box") in x]
    assert len(line) == 1 and "uplift-capture:" in line[0], done.stderr
