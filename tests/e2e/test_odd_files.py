"""Odd files in a watch folder, with the daemon as a subprocess (issue 19 items 4, 5): a FIFO
named like a movie is never opened (open() would block the settle thread for ever), a damaged
movie ends `failed` with a plain reason; the real movie beside them uploads, the daemon stays
healthy and logs no traceback."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import qt_atoms as qt
from support import (
    ATHLETE,
    Sandbox,
    jobs_by_name,
    logged,
    make_movie,
    start_daemon,
    status,
    wait_for,
    write_config,
)


def test_a_fifo_and_a_damaged_movie_beside_a_real_one(tmp_path: Path, sandbox: Sandbox) -> None:
    captures = tmp_path / "captures"
    folder = captures / ATHLETE
    folder.mkdir(parents=True)
    os.mkfifo(folder / "pipe.mov")
    (folder / "damaged.mov").write_bytes(qt.movie(qt.atom(b"mvhd"), qt.video_trak()))
    good = make_movie(tmp_path / "src" / "good.mov", 2)
    config = write_config(tmp_path / "config.toml", watch=captures, db=tmp_path / "jobs.db",
                          base_url=sandbox.base_url)
    daemon = start_daemon(tmp_path, config)
    try:
        # The pipe was looked at first; the movie comes after it, so a settle thread blocked
        # in the pipe's open() would never get to it.
        wait_for(lambda: logged(daemon, None, "pipe.mov"), 20, what="the pipe looked at")
        shutil.copy(good, folder / "good.mov")
        wait_for(lambda: jobs_by_name(config).get("good.mov", {}).get("state") == "done", 30,
                 what="the real movie uploaded")
        assert sandbox.uploads_for("good.mov")
        jobs = jobs_by_name(config)
        assert jobs["damaged.mov"]["state"] == "failed"
        assert "movie header (mvhd) is damaged" in jobs["damaged.mov"]["reason"]
        assert "pipe.mov" not in jobs  # no job: only regular files are jobs
        assert logged(daemon, "watch.not_regular", "pipe.mov")
        assert daemon.popen is not None and daemon.popen.poll() is None
        assert status(config)["notices"] == {}  # nothing for a person to look at
    finally:
        rc = daemon.stop()
    assert rc == 0
    assert (folder / "pipe.mov").exists() and (folder / "damaged.mov").exists()  # untouched
    text = daemon.log_path.read_text()
    assert "Traceback" not in text and "watch.settle_error" not in text
