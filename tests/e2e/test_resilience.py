"""Lapsed windows, rejected credentials, files that change or vanish, duplicates, and what
happens to a file after its upload: each through the daemon and sandbox as real processes."""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

from support import (
    OTHER_ATHLETE,
    Sandbox,
    captures_config,
    cli,
    job_state,
    jobs_by_name,
    make_movie,
    sha256,
    start_daemon,
    status,
    wait_for,
)

from daemon.jobs.store import Store


def setup(tmp_path: Path, box: Sandbox, upload: str = "", settle: float = 0.5) -> tuple[Path, Path]:
    captures, config = captures_config(tmp_path, box.base_url, settle=settle, upload=upload)
    return captures / "jane", config


def reservation_outcomes(tmp_path: Path, job_id: int) -> list[str]:
    store = Store.open(f"sqlite:///{tmp_path / 'jobs.db'}", migrate=False)
    try:
        return [r.outcome for r in store.reservations(job_id)]
    finally:
        store.close()


def test_window_that_lapses_while_the_daemon_is_down_is_replaced(tmp_path: Path) -> None:
    box = Sandbox(tmp_path / "sandbox", upload_window=3.0).start()
    folder, config = setup(tmp_path, box, "reserve_margin_seconds = 0")
    box.faults(upload_rate=100_000)  # ~5 s for this file: plenty of time to kill it mid-way
    movie = make_movie(tmp_path / "src.mov", frames=10)
    daemon = start_daemon(tmp_path, config)
    try:
        shutil.copy(movie, folder / "down.mov")
        wait_for(lambda: job_state(config, "down.mov") == "uploading", 30, what="uploading")
        daemon.kill()
        first = box.reservations_for("down.mov")
        assert len(first) == 1
        time.sleep(3.5)  # the window lapses while the daemon is down
        box.faults(upload_rate=None)
        daemon = start_daemon(tmp_path, config, name="daemon-2.log")
        wait_for(lambda: job_state(config, "down.mov") == "done", 30, what="done")
        reservations = box.reservations_for("down.mov")
        assert len(reservations) == 2
        (upload,) = box.uploads_for("down.mov")
        assert upload["session_id"] == reservations[1]["session_id"]
        assert upload["sha256"] == sha256(movie)
        job = jobs_by_name(config)["down.mov"]
        assert reservation_outcomes(tmp_path, job["id"]) == ["abandoned", "used"]
        assert daemon.has_event("jobs.recovered", count=1)
    finally:
        daemon.stop()
        box.stop()


def test_window_that_lapses_during_a_backoff_is_replaced(tmp_path: Path) -> None:
    box = Sandbox(tmp_path / "sandbox", upload_window=2.0).start()
    # A held window must have 1.5 s left; the retry comes at least 1 s after a 2 s window began.
    folder, config = setup(tmp_path, box, "reserve_margin_seconds = 1.5")
    box.faults(upload=[{"status": 503}])  # the first upload fails; the retry waits 1-2 s+
    daemon = start_daemon(tmp_path, config)
    try:
        movie = make_movie(tmp_path / "src.mov", frames=5)
        shutil.copy(movie, folder / "backoff.mov")
        wait_for(lambda: job_state(config, "backoff.mov") == "done", 40, what="done")
        reservations = box.reservations_for("backoff.mov")
        assert len(reservations) == 2
        (upload,) = box.uploads_for("backoff.mov")
        assert upload["session_id"] == reservations[1]["session_id"]
        assert daemon.has_event("job.retry") and daemon.has_event("job.window_short")
        job = jobs_by_name(config)["backoff.mov"]
        assert job["attempts"] == 2
        assert reservation_outcomes(tmp_path, job["id"]) == ["lapsed", "used"]
    finally:
        daemon.stop()
        box.stop()


def test_rejected_token_pauses_without_failing_jobs(tmp_path: Path, sandbox: Sandbox) -> None:
    folder, config = setup(tmp_path, sandbox)
    daemon = start_daemon(tmp_path, config, token="wrong-token-xyz")
    try:
        for i in range(3):
            shutil.copy(make_movie(tmp_path / f"s{i}.mov", frames=3), folder / f"p{i}.mov")
        wait_for(lambda: daemon.has_event("api.credentials_rejected"), 30, what="the 401")
        wait_for(lambda: all(job_state(config, f"p{i}.mov") == "queued" for i in range(3)), 20,
                 what="all three queued")
        time.sleep(1.5)  # more wake-ups happen; still no job may fail
        data = status(config)
        assert data["counts"]["failed"] == 0 and data["counts"]["queued"] == 3
        assert "credentials" in data["notices"]
        assert "rejected our credentials" in data["notices"]["credentials"]["message"]
        assert len(sandbox.state()["reservations"]) == 0
        # At most one try per upload slot (concurrency 2), not one per job, and no more
        # before the probe time.
        assert sum(e.get("event") == "api.credentials_rejected" for e in daemon.events()) <= 2
        text = cli("status", "--config", str(config)).stdout
        assert "ATTENTION" in text and "rejected our credentials" in text
        assert daemon.stop() == 0
        daemon = start_daemon(tmp_path, config, name="daemon-2.log")  # the right token
        wait_for(lambda: status(config)["counts"]["done"] == 3, 30, what="all done")
        assert status(config)["notices"] == {}
    finally:
        daemon.stop()


def test_file_rewritten_during_upload_ends_in_its_final_form(tmp_path: Path,
                                                             sandbox: Sandbox) -> None:
    folder, config = setup(tmp_path, sandbox)
    sandbox.faults(upload_rate=200_000)
    first = make_movie(tmp_path / "v1.mov", frames=80)  # ~4 MB: 20 s at this rate
    final = make_movie(tmp_path / "v2.mov", frames=8)
    daemon = start_daemon(tmp_path, config)
    try:
        shutil.copy(first, folder / "take.mov")
        wait_for(lambda: job_state(config, "take.mov") == "uploading", 30, what="uploading")
        shutil.copy(final, folder / "take.mov")  # rewritten in place while it uploads
        sandbox.faults(upload_rate=None)
        wait_for(lambda: job_state(config, "take.mov") == "done" and
                 jobs_by_name(config)["take.mov"]["size"] == final.stat().st_size, 40,
                 what="the final form to be done")
        uploads = sandbox.uploads_for("take.mov")
        assert uploads[-1]["sha256"] == sha256(final)
        assert all(u["sha256"] != sha256(first) for u in uploads)  # never a mix, never stale
        assert status(config)["counts"]["done"] == 1
    finally:
        daemon.stop()


def test_file_deleted_before_its_upload_ends_skipped_with_a_reason(tmp_path: Path,
                                                           sandbox: Sandbox) -> None:
    # The first upload (about 300 KB) holds the only slot's send turn for about 3 s.
    folder, config = setup(tmp_path, sandbox, 'concurrency = 1\nbandwidth_limit = "100K"')
    sandbox.faults(upload_delay=[3.0])
    daemon = start_daemon(tmp_path, config)
    try:
        shutil.copy(make_movie(tmp_path / "a.mov", frames=3), folder / "first.mov")
        wait_for(lambda: job_state(config, "first.mov") == "uploading", 30, what="uploading")
        shutil.copy(make_movie(tmp_path / "b.mov", frames=3), folder / "gone.mov")
        # Reserved ahead while the slot is busy (issue 13): checked again before its upload.
        wait_for(lambda: job_state(config, "gone.mov") == "reserved", 30, what="reserved")
        os.unlink(folder / "gone.mov")
        # Not a failure: nothing a person must fix (a moved file is found at its new place).
        wait_for(lambda: job_state(config, "gone.mov") == "skipped", 30, what="skipped")
        job = jobs_by_name(config)["gone.mov"]
        assert "moved or deleted before it was uploaded" in job["last_error"]
        assert job["attempts"] == 1
        assert not sandbox.uploads_for("gone.mov")
        wait_for(lambda: job_state(config, "first.mov") == "done", 30, what="first done")
    finally:
        daemon.stop()


def test_same_video_again_is_skipped_naming_the_earlier_job(tmp_path: Path,
                                                            sandbox: Sandbox) -> None:
    folder, config = setup(tmp_path, sandbox)
    daemon = start_daemon(tmp_path, config)
    try:
        movie = make_movie(tmp_path / "m.mov", frames=4)
        shutil.copy(movie, folder / "original.mov")
        wait_for(lambda: job_state(config, "original.mov") == "done", 30, what="done")
        (folder / "again").mkdir()
        shutil.copy(movie, folder / "again" / "copy-from-card.mov")
        wait_for(lambda: job_state(config, "copy-from-card.mov") == "skipped", 30,
                 what="skipped")
        jobs = jobs_by_name(config)
        reason = jobs["copy-from-card.mov"]["last_error"]
        assert f"job {jobs['original.mov']['id']}" in reason and "allow_duplicates" in reason
        assert len(sandbox.state()["uploads"]) == 1
        # Another athlete's copy of the same video is not a duplicate.
        (folder.parent / OTHER_ATHLETE).mkdir()
        shutil.copy(movie, folder.parent / OTHER_ATHLETE / "other.mov")
        wait_for(lambda: job_state(config, "other.mov") == "done", 30, what="other done")
    finally:
        daemon.stop()


def test_after_upload_move_keeps_structure_and_never_overwrites(tmp_path: Path,
                                                                 sandbox: Sandbox) -> None:
    archive = tmp_path / "archive"
    folder, config = setup(tmp_path, sandbox, f'after_upload = "move"\narchive_dir = "{archive}"')
    (archive / "jane" / "warmup").mkdir(parents=True)
    (archive / "jane" / "warmup" / "swing.mov").write_bytes(b"an earlier archived file")
    daemon = start_daemon(tmp_path, config)
    try:
        movie = make_movie(tmp_path / "m.mov", frames=4)
        (folder / "warmup").mkdir()
        shutil.copy(movie, folder / "warmup" / "swing.mov")
        wait_for(lambda: not (folder / "warmup" / "swing.mov").exists(), 30, what="moved")
        moved = archive / "jane" / "warmup" / "swing (2).mov"
        assert sha256(moved) == sha256(movie)
        assert (archive / "jane" / "warmup" / "swing.mov").read_bytes() == \
            b"an earlier archived file"
        assert job_state(config, "swing.mov") == "done"
    finally:
        assert daemon.stop() == 0


def test_after_upload_delete_only_deletes_done_files(tmp_path: Path, sandbox: Sandbox) -> None:
    folder, config = setup(tmp_path, sandbox, 'after_upload = "delete"')
    daemon = start_daemon(tmp_path, config)
    try:
        shutil.copy(make_movie(tmp_path / "m.mov", frames=4), folder / "ok.mov")
        (folder / "broken.mov").write_bytes(b"\0" * 5000)
        wait_for(lambda: job_state(config, "broken.mov") == "failed", 30, what="failed")
        wait_for(lambda: not (folder / "ok.mov").exists(), 30, what="deleted")
        assert job_state(config, "ok.mov") == "done"
        assert (folder / "broken.mov").exists()  # failed files stay
        daemon.signal(signal.SIGTERM)
    finally:
        daemon.stop()


def test_api_trouble_holds_all_reservations_not_just_one_job(tmp_path: Path,
                                                              sandbox: Sandbox) -> None:
    folder, config = setup(tmp_path, sandbox, "concurrency = 1")
    sandbox.faults(reserve=[{"status": 503, "retry_after": 3}] * 3)
    daemon = start_daemon(tmp_path, config)
    try:
        for i in range(3):
            shutil.copy(make_movie(tmp_path / f"s{i}.mov", frames=2), folder / f"q{i}.mov")
        wait_for(lambda: daemon.has_event("job.retry"), 20, what="the first 503")
        time.sleep(1.5)
        # Without a shared hold, the other two jobs would have hit the API (and its 503s) too.
        assert sum(e.get("event") == "job.retry" for e in daemon.events()) == 1
        assert all(job_state(config, f"q{i}.mov") == "queued" for i in range(3))
        wait_for(lambda: status(config)["counts"]["done"] == 3, 60, what="all done")
    finally:
        daemon.stop()
