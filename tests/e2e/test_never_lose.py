"""Issue 9, defects 1 and 5: a file renamed or moved while it waits is still uploaded once,
under its current name; a retried job goes at once, not at the next rescan. Daemon and sandbox
run as real processes."""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

from support import (
    ATHLETE,
    OTHER_ATHLETE,
    Proc,
    Sandbox,
    captures_config,
    cli,
    job_state,
    jobs_by_name,
    logged,
    make_movie,
    sha256,
    start_daemon,
    wait_for,
    wait_settled,
)

SESSION_A = "5e551011-aaaa-4aaa-8aaa-00000000000a"
SESSION_B = "5e551011-bbbb-4bbb-8bbb-00000000000b"
HOLD_RATE = 100_000  # bytes/s: the ~450 KB blocker holds the only slot for ~4.5 s
# The daemon's own limit holds the send turn: an endpoint that merely reads slowly has the
# closing boundary (and with it the turn, work/turns.py) well before it finishes reading.
ONE_SLOT = 'concurrency = 1\nbandwidth_limit = "100K"'


def setup(tmp_path: Path, box: Sandbox, settle: float = 0.3,
          upload: str = ONE_SLOT) -> tuple[Path, Path]:
    return captures_config(tmp_path, box.base_url, settle=settle, upload=upload)


def hold_the_slot(tmp_path: Path, box: Sandbox, daemon: Proc, folder: Path) -> None:
    """A slow upload takes the only slot, so what comes next waits `queued`."""
    box.faults(upload_rate=HOLD_RATE)
    shutil.copy(make_movie(tmp_path / "blocker-src.mov", frames=4), folder / "blocker.mov")
    wait_for(lambda: logged(daemon, "upload.started", "blocker.mov"), 20,
             what="the blocker's upload to start")


def queued(tmp_path: Path, daemon: Proc, dest: Path) -> Path:
    """A small real movie dropped at `dest`, waited on until the daemon queued it."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(make_movie(tmp_path / f"src-{dest.name}", frames=1), dest)
    wait_for(lambda: logged(daemon, "job.queued", dest.name), 20, what=f"{dest.name} queued")
    return dest


def release(box: Sandbox, daemon: Proc, new_name: str) -> None:
    """Once the daemon has noticed the file at its new place, let uploads run at full speed
    (the blocker keeps its own rate until it ends, so the slot stays busy a little longer)."""
    wait_for(lambda: logged(daemon, None, new_name), 20, what=f"the daemon to notice {new_name}")
    box.faults(upload_rate=None)


def assert_uploaded_once_at(box: Sandbox, config: Path, new: Path,
                            old: Path) -> dict[str, Any]:
    """Exactly one upload, under the current name; its job `done` at the current path; no job
    `failed`; a job left behind at the old path (rather than following the file) is `skipped`
    with a reason that says it moved, better where to ("removed" sends a coach hunting)."""
    jobs = wait_settled(config, 45, what=f"jobs to settle after moving to {new}")
    failed = [(j["path"], j["last_error"]) for j in jobs if j["state"] == "failed"]
    assert not failed, f"a moved file must not leave a failed job: {failed}"
    for j in jobs:
        if j["state"] == "skipped":
            assert j["last_error"], f"skipped without a reason: {j}"
        if Path(j["path"]).resolve() == old.resolve():
            reason = j["last_error"] or ""
            says_moved = new.name in reason or re.search(r"\bmoved\b", reason)
            assert j["state"] == "skipped" and says_moved, \
                f"the job at the old path should say the file moved (to {new}): {j}"
    here = [j for j in jobs if Path(j["path"]).resolve() == new.resolve()]
    assert [j["state"] for j in here] == ["done"], f"jobs at {new}: {here} (all: {jobs})"
    uploads = box.uploads_for(new.name)
    assert len(uploads) == 1, f"{new.name} uploaded {len(uploads)} times"
    assert uploads[0]["sha256"] == sha256(new)
    if old.name != new.name:
        assert not box.uploads_for(old.name), "uploaded under the old name"
    return here[0]


def test_renamed_while_queued_is_uploaded_once_under_the_new_name(tmp_path: Path,
                                                                  sandbox: Sandbox) -> None:
    captures, config = setup(tmp_path, sandbox)
    jane = captures / "jane"
    daemon = start_daemon(tmp_path, config)
    try:
        hold_the_slot(tmp_path, sandbox, daemon, jane)
        old = queued(tmp_path, daemon, jane / "take-1.mov")
        old.rename(jane / "swing-jane.mov")
        release(sandbox, daemon, "swing-jane.mov")
        assert_uploaded_once_at(sandbox, config, jane / "swing-jane.mov", old)
        assert len(sandbox.uploads_for("blocker.mov")) == 1
    finally:
        daemon.stop()


def test_renamed_while_settling_is_uploaded_once_under_the_new_name(tmp_path: Path,
                                                                    sandbox: Sandbox) -> None:
    captures, config = setup(tmp_path, sandbox, settle=2.0, upload="")
    # A polled folder (a share): no close events, so a complete movie waits out its settle
    # there too (on a local disk it would go the moment the copy closes it: instant pickup).
    config.write_text(config.read_text().replace(
        "[[watch]]\n", "[watching]\npoll_interval = 0.3\n[[watch]]\npoll = true\n", 1))
    jane = captures / "jane"
    daemon = start_daemon(tmp_path, config)
    try:
        shutil.copy(make_movie(tmp_path / "src.mov", frames=1), jane / "take-1.mov")
        wait_for(lambda: logged(daemon, "job.seen", "take-1.mov"), 10, what="take-1 seen")
        (jane / "take-1.mov").rename(jane / "swing-jane.mov")  # well within the 2 s settle
        assert not logged(daemon, "job.queued", "take-1.mov"), "renamed too late for this test"
        wait_for(lambda: logged(daemon, None, "swing-jane.mov"), 10, what="the new name seen")
        assert_uploaded_once_at(sandbox, config, jane / "swing-jane.mov", jane / "take-1.mov")
    finally:
        daemon.stop()


def test_moved_to_another_session_folder_takes_that_session_group(tmp_path: Path,
                                                                  sandbox: Sandbox) -> None:
    captures, config = setup(tmp_path, sandbox)
    jane = captures / "jane"
    (jane / SESSION_B).mkdir()
    daemon = start_daemon(tmp_path, config)
    try:
        hold_the_slot(tmp_path, sandbox, daemon, jane)
        old = queued(tmp_path, daemon, jane / SESSION_A / "clip.mov")
        old.rename(jane / SESSION_B / "clip.mov")
        release(sandbox, daemon, f"{SESSION_B}/clip.mov")
        job = assert_uploaded_once_at(sandbox, config, jane / SESSION_B / "clip.mov", old)
        assert job["session_group_id"] == SESSION_B  # a UUID folder name is the group
        (upload,) = sandbox.uploads_for("clip.mov")
        (used,) = [r for r in sandbox.reservations_for("clip.mov")
                   if r["session_id"] == upload["session_id"]]
        assert used["session_group_id"] == SESSION_B
    finally:
        daemon.stop()


def test_session_folder_renamed_while_its_files_wait(tmp_path: Path, sandbox: Sandbox) -> None:
    captures, config = setup(tmp_path, sandbox)
    jane = captures / "jane"
    daemon = start_daemon(tmp_path, config)
    try:
        hold_the_slot(tmp_path, sandbox, daemon, jane)
        for name in ("s1.mov", "s2.mov"):
            queued(tmp_path, daemon, jane / "session-a" / name)
        (jane / "session-a").rename(jane / "warmup")  # `mv session-a warmup`
        wait_for(lambda: logged(daemon, None, "warmup/s1.mov")
                 and logged(daemon, None, "warmup/s2.mov"), 20, what="the new folder noticed")
        sandbox.faults(upload_rate=None)
        for name in ("s1.mov", "s2.mov"):
            assert_uploaded_once_at(sandbox, config, jane / "warmup" / name,
                                    jane / "session-a" / name)
    finally:
        daemon.stop()


def test_athlete_alias_folder_renamed_to_her_uuid_while_a_file_waits(tmp_path: Path,
                                                                     sandbox: Sandbox) -> None:
    captures, config = setup(tmp_path, sandbox)
    other = captures / OTHER_ATHLETE
    other.mkdir()
    daemon = start_daemon(tmp_path, config)
    try:
        hold_the_slot(tmp_path, sandbox, daemon, other)  # not in jane's tree, which moves
        queued(tmp_path, daemon, captures / "jane" / "waits.mov")
        (captures / "jane").rename(captures / ATHLETE)
        release(sandbox, daemon, f"{ATHLETE}/waits.mov")
        job = assert_uploaded_once_at(sandbox, config, captures / ATHLETE / "waits.mov",
                                      captures / "jane" / "waits.mov")
        assert job["athlete_id"] == ATHLETE
    finally:
        daemon.stop()


def retried_within(config: Path, args: list[str], name: str, seconds: float) -> None:
    out = cli("retry", *args, "--config", str(config))
    assert out.returncode == 0 and "requeued 1 job" in out.stdout, out.stdout + out.stderr
    started = time.monotonic()
    wait_for(lambda: job_state(config, name) == "done", seconds,
             what=f"{name} done after `retry {' '.join(args)}` (no SIGHUP, poll is 30 s)")
    assert time.monotonic() - started <= seconds


def test_retry_force_of_a_refused_file_goes_at_once(tmp_path: Path, sandbox: Sandbox) -> None:
    captures, config = setup(tmp_path, sandbox, upload="poll_seconds = 30")
    daemon = start_daemon(tmp_path, config)
    try:
        junk = captures / "jane" / "odd-camera.mov"
        junk.write_bytes(os.urandom(100_000))  # not a QuickTime movie
        wait_for(lambda: job_state(config, "odd-camera.mov") == "failed", 20, what="refused")
        job = jobs_by_name(config)["odd-camera.mov"]
        assert not sandbox.reservations_for("odd-camera.mov")
        retried_within(config, ["--force", str(job["id"])], "odd-camera.mov", 5)
        (upload,) = sandbox.uploads_for("odd-camera.mov")
        assert upload["sha256"] == sha256(junk)
    finally:
        daemon.stop()


def test_retry_of_a_job_the_api_refused_goes_at_once(tmp_path: Path, sandbox: Sandbox) -> None:
    captures, config = setup(tmp_path, sandbox, upload="poll_seconds = 30")
    sandbox.faults(reserve=[{"status": 422}])
    daemon = start_daemon(tmp_path, config)
    try:
        shutil.copy(make_movie(tmp_path / "src.mov", frames=1), captures / "jane" / "r.mov")
        wait_for(lambda: job_state(config, "r.mov") == "failed", 20, what="the 422 to fail it")
        job = jobs_by_name(config)["r.mov"]
        retried_within(config, [str(job["id"])], "r.mov", 5)
        assert len(sandbox.uploads_for("r.mov")) == 1
    finally:
        daemon.stop()
