"""Issue 19, item 6, end to end: the daemon's `done` commit reaches the job table but the
connection drops before its answer (tests/dbfaults.py, armed in the daemon process). The retry
finds the row already done under its own claim: success. The after-upload action runs, the file
was uploaded once, and the daemon stops cleanly (no "uploads accepted but not recorded")."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from dbfaults import sitecustomize_dir
from support import (
    TOKEN,
    Proc,
    Sandbox,
    captures_config,
    jobs_by_name,
    make_movie,
    set_config_key,
    wait_for,
)

TESTS = Path(__file__).resolve().parents[1]


def test_done_whose_answer_was_lost_is_not_unwritten_and_the_file_is_deleted(
        tmp_path: Path, sandbox: Sandbox, db_url: str) -> None:
    captures, config = captures_config(tmp_path, sandbox.base_url, settle=0.3,
                                       upload='after_upload = "delete"')
    set_config_key(config, "database", "url", json.dumps(db_url))
    site = sitecustomize_dir(tmp_path)
    daemon = Proc(["run", "--config", str(config)], tmp_path / "daemon.log",
                  env={"UPLIFT_API_TOKEN": TOKEN, "UPLIFT_TEST_DROP_AFTER_DONE": "1",
                       "PYTHONPATH": f"{site}:{TESTS}"}).start()
    try:
        wait_for(lambda: daemon.has_event("daemon.ready"), 30, what="daemon.ready")
        movie = captures / "jane" / "swing.mov"
        shutil.copy(make_movie(tmp_path / "src.mov", frames=2), movie)
        wait_for(lambda: not movie.exists(), 30, what="the after-upload delete")
        assert daemon.has_event("job.done_unwritten")  # the fault did fire once
        assert daemon.has_event("upload.done") and daemon.has_event("job.after_upload")
        job = jobs_by_name(config)["swing.mov"]
        assert job["state"] == "done"
    finally:
        code = daemon.stop()
    events = [e["event"] for e in daemon.events()]
    assert code == 0, daemon.log_path.read_text()[-3000:]
    assert "daemon.failed" not in events and "worker.record_failed" not in events
    assert events.count("job.done_unwritten") == 1
    assert len(sandbox.uploads_for("swing.mov")) == 1
