"""Issue 33 item 4: retention frees space only from analysed captures. A tmpfs of a few tens of
MiB is the watch folder; the sandbox follows captures to `completed` (or `error` for a name with
"qa-fail"). Filled to the brim, the daemon deletes the oldest completed original, and only as
many as the floor needs; a QA-failed capture, a still-processing one and a file changed since
its upload are kept, and once nothing may go an ATTENTION says how much is free and why."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

from support import (
    Proc,
    Sandbox,
    cli,
    fill_disk,
    make_movie,
    small_tmpfs,
    start_daemon,
    status,
    wait_for,
    write_config,
)

ATHLETE = "8d0c6f3e-2c0e-4a7e-9d7b-3f1c2b5a6e01"
MiB = 1024**2


def jobs(config: Path) -> list[dict[str, Any]]:
    return status(config, "--all")["jobs"]


def analysed(config: Path, *names: str) -> bool:
    final = {Path(j["path"]).name for j in jobs(config)
             if (j.get("analysis") or {}).get("status") in ("completed", "error")}
    return set(names) <= final


def drop(tmp_path: Path, folder: Path, name: str, frames: int = 30) -> Path:
    shutil.copy(make_movie(tmp_path / "src" / name, frames=frames), folder / name)
    return folder / name


def station(tmp_path: Path, watch: Path, sandbox: Sandbox, retention: str) -> Path:
    return write_config(tmp_path / "config.toml", watch=watch, db=tmp_path / "jobs.db",
                        base_url=sandbox.base_url, athletes={"jane": ATHLETE}, settle=0.3,
                        extra=f'[station]\nlow_disk = "off"\n[retention]\n{retention}\n')


def test_frees_only_analysed_originals_oldest_first_and_says_when_it_cannot(
        tmp_path: Path, sandbox: Sandbox, procs: list[Proc]) -> None:
    with small_tmpfs(tmp_path / "disk", "40m") as disk:
        folder = disk / "captures" / "jane"
        folder.mkdir(parents=True)
        config = station(tmp_path, disk / "captures", sandbox, 'min_free = "1MiB"')
        procs.append(daemon := start_daemon(tmp_path, config))
        old = drop(tmp_path, folder, "old.mov")
        wait_for(lambda: analysed(config, "old.mov"), 60, what="old.mov analysed")
        files = [drop(tmp_path, folder, n) for n in ("new.mov", "swing-qa-fail.mov",
                                                     "changed.mov")]
        wait_for(lambda: analysed(config, "new.mov", "swing-qa-fail.mov", "changed.mov"), 60,
                 what="the rest analysed")
        new, qa_failed, changed = files
        # From here on, captures stay processing at Uplift.
        sandbox.faults(analysis_seconds=3600)
        with open(changed, "ab") as f:  # a newer version: its upload is still processing
            f.write(b"\0" * 1024)
        processing = drop(tmp_path, folder, "processing.mov")
        wait_for(lambda: sum((j.get("analysis") or {}).get("status") == "processing"
                             for j in jobs(config)) == 2, 60, what="two uploads processing")
        assert status(config)["retention"] == {"freed_bytes": 0, "freed_files": 0,
                                               "since": None}  # plenty free: nothing goes
        size_old, size_new = old.stat().st_size, new.stat().st_size
        assert size_old > MiB and size_new > MiB

        fill_disk(disk, "filler-1")
        wait_for(lambda: not old.exists(), 20, what="the oldest analysed original deleted")
        time.sleep(6)  # more than a look of the space thread: a second file would go now
        assert new.exists(), "freed more than the floor needed"
        fill_disk(disk, "filler-2")
        wait_for(lambda: not new.exists(), 20, what="the next analysed original deleted")

        fill_disk(disk, "filler-3")  # nothing may go now
        notice = wait_for(lambda: status(config)["notices"].get("retention"), 20,
                          what="the retention ATTENTION")
        message = notice["message"]
        assert str(disk / "captures") in message and "free, under [retention] min_free" in message
        assert "still being analysed by Uplift" in message
        assert "failed Uplift's checks (kept for the coach)" in message
        for kept in (qa_failed, changed, processing):
            assert kept.exists(), f"{kept.name} was deleted"
        doc = status(config)
        assert doc["retention"]["freed_files"] == 2
        assert doc["retention"]["freed_bytes"] == size_old + size_new
        assert doc["retention"]["since"].endswith("Z")
        text = cli("status", "--config", str(config)).stdout
        assert "Retention: freed " in text and ": 2 files" in text
        assert f"ATTENTION: {message}" in text
        assert daemon.has_event("retention.deleted", path=str(old), size=size_old)
        assert daemon.has_event("retention.kept", path=str(changed))
        assert not daemon.has_event("retention.deleted", path=str(qa_failed))
        daemon.signal(signal.SIGTERM)
        assert daemon.stop() == 0


def test_keep_days_deletes_old_analysed_uploads_only(tmp_path: Path, sandbox: Sandbox,
                                                     procs: list[Proc]) -> None:
    folder = tmp_path / "captures" / "jane"
    folder.mkdir(parents=True)
    config = station(tmp_path, tmp_path / "captures", sandbox, "keep_days = 1")
    procs.append(daemon := start_daemon(tmp_path, config))
    aged, before, fresh = (drop(tmp_path, folder, n, frames=2)
                           for n in ("aged.mov", "before-following.mov", "fresh.mov"))
    wait_for(lambda: analysed(config, "aged.mov", "before-following.mov", "fresh.mov"), 60,
             what="all analysed")
    daemon.signal(signal.SIGTERM)
    assert daemon.stop() == 0
    two_days_ago = time.time() - 2 * 86400
    with sqlite3.connect(tmp_path / "jobs.db") as db:
        db.execute("UPDATE jobs SET finished_at = ? WHERE path IN (?, ?)",
                   (two_days_ago, str(aged), str(before)))
        # As a job done before captures were followed (0009) reads: no verdict at all.
        db.execute("UPDATE jobs SET analysis_status = NULL WHERE path = ?", (str(before),))
    procs.append(daemon := start_daemon(tmp_path, config, name="again.log"))
    wait_for(lambda: not aged.exists(), 20, what="the aged analysed original deleted")
    time.sleep(6)  # more than a look
    assert before.exists() and fresh.exists()
    assert status(config)["retention"]["freed_files"] == 1
    assert daemon.has_event("retention.deleted", path=str(aged), why="keep_days")
    assert os.path.exists(fresh)
