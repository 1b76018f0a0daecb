"""The pipeline end to end: the daemon as a subprocess, the sandbox as a subprocess, real
QuickTime files arriving in real folders in every way an operator or capture software does."""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

from support import (
    ATHLETE,
    Sandbox,
    jobs_by_name,
    make_movie,
    sha256,
    start_daemon,
    status,
    wait_for,
    write_config,
)


def test_files_arriving_every_way_are_uploaded_once_and_byte_identical(
        tmp_path: Path, sandbox: Sandbox) -> None:
    captures = tmp_path / "captures"
    athlete_dir = captures / "jane"
    athlete_dir.mkdir(parents=True)
    config = write_config(tmp_path / "config.toml", watch=captures, db=tmp_path / "jobs.db",
                          base_url=sandbox.base_url, settle=1.0)
    src = tmp_path / "src"
    copied = make_movie(src / "copied.mov", frames=20)
    renamed = make_movie(src / "renamed.mov", frames=20)
    slow = make_movie(src / "slow.mov", frames=40)
    moved_dir = src / "session-a"
    make_movie(moved_dir / "m1.mov", frames=5)
    make_movie(moved_dir / "m2.mov", frames=5)
    cp_dir = src / "session-b"
    make_movie(cp_dir / "c1.MOV", frames=5)
    unknown = make_movie(src / "unknown.mov", frames=5)
    preexisting = make_movie(athlete_dir / ATHLETE / "early.mov", frames=5)  # before start

    daemon = start_daemon(tmp_path, config)
    try:
        # 1. a copied file
        shutil.copy(copied, athlete_dir / "copied.mov")
        # 2. written under a temp name, then renamed in
        shutil.copy(renamed, athlete_dir / ".renamed.mov.part")
        os.rename(athlete_dir / ".renamed.mov.part", athlete_dir / "renamed.mov")
        # 3. a folder of files moved into the tree, and one copied in with cp -r semantics
        os.rename(moved_dir, athlete_dir / "session-a")
        shutil.copytree(cp_dir, captures / ATHLETE / "session-b")
        # 4. an unknown athlete folder, and a file that is not a .mov
        (captures / "bob").mkdir()
        shutil.copy(unknown, captures / "bob" / "unknown.mov")
        (athlete_dir / "notes.txt").write_text("not a movie")
        # 5. a file written slowly over several seconds, pausing less than settle_seconds
        data = slow.read_bytes()
        step = len(data) // 12
        with open(athlete_dir / "slow.mov", "wb") as f:
            for i in range(0, len(data), step):
                f.write(data[i:i + step])
                f.flush()
                time.sleep(0.4)

        sources = {"copied.mov": copied, "renamed.mov": renamed, "slow.mov": slow,
                   "m1.mov": athlete_dir / "session-a" / "m1.mov",
                   "m2.mov": athlete_dir / "session-a" / "m2.mov",
                   "c1.MOV": cp_dir / "c1.MOV", "early.mov": preexisting}
        done = wait_for(lambda: _all_done(config, sources), 60, 0.3,
                        what="every file to be done")
        assert "notes.txt" not in done  # not a .mov: never a job

        # Byte-identical: what the sandbox stored has the source's sha256.
        state = sandbox.state()
        for name, source in sources.items():
            uploads = [u for u in state["uploads"] if u["key"].endswith("/" + name)]
            assert len(uploads) == 1, f"{name}: uploaded {len(uploads)} times"
            assert uploads[0]["sha256"] == sha256(source), f"{name} differs"
            assert sha256(Path(uploads[0]["path"])) == sha256(source)
            assert done[name]["session_id"] == uploads[0]["session_id"]
            assert done[name]["athlete_id"] == ATHLETE

        # The unknown athlete's file is held with a reason that says how to fix it.
        held = jobs_by_name(config)["unknown.mov"]
        assert held["state"] == "pending"
        assert "'bob'" in held["last_error"] and "[athletes]" in held["last_error"]
        assert not [r for r in state["reservations"] if r["file_name"] == "unknown.mov"]

        # Session groups: the two files of one session folder share a group; day files differ.
        groups = {n: j["session_group_id"] for n, j in jobs_by_name(config).items()}
        assert groups["m1.mov"] == groups["m2.mov"]
        assert groups["copied.mov"] == groups["renamed.mov"] != groups["m1.mov"]

        daemon.signal(signal.SIGTERM)
        assert daemon.popen is not None
        assert daemon.popen.wait(30) == 0
    finally:
        daemon.kill()

    # A restart finds everything already done and reserves nothing again.
    before = len(sandbox.state()["reservations"])
    restarted = start_daemon(tmp_path, config)
    try:
        wait_for(lambda: restarted.has_event("watch.started"), 20, what="watch.started")
        time.sleep(3.0)  # several settle periods: anything it would re-queue would be by now
        assert len(sandbox.state()["reservations"]) == before
        counts = status(config)["counts"]
        assert counts["done"] == 7 and counts["queued"] == 0 and counts["reserved"] == 0
    finally:
        assert restarted.stop() == 0


def _all_done(config: Path, expected: dict) -> dict | None:
    jobs = jobs_by_name(config)
    if all(jobs.get(name, {}).get("state") == "done" for name in expected):
        return jobs
    return None
