"""When uploads may go (issue 14), through the daemon and sandbox as real processes: the
operator's pause (stored, timed, `--now`), `[upload] hours`, and the bandwidth timetable with
its SIGUSR2 toggle. Hours and timetable slots are computed from the local clock, so "now" is
inside (or outside) them whenever the test runs."""

from __future__ import annotations

import shutil
import signal
import time
from datetime import datetime, timedelta
from pathlib import Path

from support import (
    Proc,
    Sandbox,
    captures_config,
    cli,
    job_state,
    jobs_by_name,
    make_movie,
    set_config_key,
    start_daemon,
    status,
    wait_for,
)


def setup(tmp_path: Path, box: Sandbox, upload: str = "") -> tuple[Path, Path]:
    captures, config = captures_config(tmp_path, box.base_url, upload=upload)
    return captures / "jane", config


def run_cli(config: Path, *args: str) -> str:
    out = cli(*args, "--config", str(config))
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def clock(dt: datetime) -> str:
    return dt.strftime("%H:%M")


def waits_because(config: Path, name: str, words: str) -> dict | None:
    """The job is queued and says why with `words` (status --json job "reason")."""
    job = jobs_by_name(config).get(name, {})
    return job if job.get("state") == "queued" and words in (job.get("reason") or "") else None


def upload_seconds(daemon: Proc, name: str) -> float:
    (done,) = [e for e in daemon.events() if e.get("event") == "upload.done"
               and str(e.get("path", "")).endswith("/" + name)]
    return float(done["seconds"])


def issued_at(box: Sandbox, name: str) -> float:
    (res,) = box.reservations_for(name)
    return datetime.fromisoformat(res["issued_at"].replace("Z", "+00:00")).timestamp()


# --- pause / resume ---------------------------------------------------------------------------

def test_pause_holds_new_files_survives_a_restart_and_resume_starts_them(
        tmp_path: Path, sandbox: Sandbox) -> None:
    folder, config = setup(tmp_path, sandbox)
    daemon = start_daemon(tmp_path, config)
    try:
        assert "paused" in run_cli(config, "pause")
        shutil.copy(make_movie(tmp_path / "a.mov", frames=3), folder / "held.mov")
        job = wait_for(lambda: waits_because(config, "held.mov", "paused"), 20,
                       what="held.mov queued, waiting for the pause")
        assert "resume" in job["reason"]
        data = status(config)
        assert "paused" in (data["hold"] or "")
        assert "paused" in data["notices"]
        assert "paused" in cli("status", "--config", str(config)).stdout
        # A second file and a poke (more wake-ups): still no reservation for either.
        shutil.copy(make_movie(tmp_path / "b.mov", frames=3), folder / "held2.mov")
        wait_for(lambda: waits_because(config, "held2.mov", "paused"), 20, what="held2 held")
        daemon.signal(signal.SIGUSR1)
        assert sandbox.state()["reservations"] == []

        # The pause is stored: a restarted daemon keeps holding.
        assert daemon.stop() == 0
        daemon = start_daemon(tmp_path, config, name="daemon-2.log")
        daemon.signal(signal.SIGUSR1)
        wait_for(lambda: status(config)["counts"]["queued"] == 2, 10, what="both still queued")
        assert waits_because(config, "held.mov", "paused")
        assert sandbox.state()["reservations"] == []

        assert "resume" in run_cli(config, "resume")  # pokes the daemon: no SIGHUP needed
        wait_for(lambda: job_state(config, "held.mov") == "done" and
                 job_state(config, "held2.mov") == "done", 10, what="both done after resume")
        data = status(config)
        assert data["hold"] is None and "paused" not in data["notices"]
    finally:
        daemon.stop()


def test_pause_for_a_duration_resumes_by_itself(tmp_path: Path, sandbox: Sandbox) -> None:
    folder, config = setup(tmp_path, sandbox)
    daemon = start_daemon(tmp_path, config)
    try:
        later = datetime.now() + timedelta(hours=2)
        # Tomorrow's time (after 22:00) carries its date.
        shown = ("" if later.date() == datetime.now().date() else
                 later.strftime("%Y-%m-%d ")) + clock(later)
        assert f"until {shown}" in run_cli(config, "pause", "--until", clock(later))
        assert f"paused until {shown}" in (status(config)["hold"] or "")
        paused_at = time.time()  # a new pause replaces the old one
        assert "until" in run_cli(config, "pause", "--for", "3s")
        shutil.copy(make_movie(tmp_path / "a.mov", frames=3), folder / "later.mov")
        wait_for(lambda: waits_because(config, "later.mov", "paused until"), 10,
                 what="later.mov held by the timed pause")
        wait_for(lambda: job_state(config, "later.mov") == "done", 20,
                 what="done once the pause ran out")
        # Not reserved before the pause ended (the sandbox's time has one-second resolution).
        assert issued_at(sandbox, "later.mov") >= paused_at + 3 - 1
        assert status(config)["hold"] is None
    finally:
        daemon.stop()


def test_pause_now_puts_a_running_upload_back_and_resume_completes_it(
        tmp_path: Path, sandbox: Sandbox) -> None:
    folder, config = setup(tmp_path, sandbox)
    sandbox.faults(upload_rate=100_000)  # ~5 s for this file: time to pause it mid-way
    movie = make_movie(tmp_path / "a.mov", frames=10)
    daemon = start_daemon(tmp_path, config)
    try:
        shutil.copy(movie, folder / "slow.mov")
        wait_for(lambda: job_state(config, "slow.mov") == "uploading", 20, what="uploading")
        assert "put back" in run_cli(config, "pause", "--now")
        wait_for(lambda: waits_because(config, "slow.mov", "paused"), 10,
                 what="the upload back in the queue, held by the pause")
        assert daemon.has_event("upload.interrupted")
        assert sandbox.uploads_for("slow.mov") == []
        sandbox.faults(upload_rate=None)
        run_cli(config, "resume")
        wait_for(lambda: job_state(config, "slow.mov") == "done", 15, what="done after resume")
        (upload,) = sandbox.uploads_for("slow.mov")
        assert upload["size"] == movie.stat().st_size
    finally:
        daemon.stop()


# --- upload hours -----------------------------------------------------------------------------

def test_upload_hours_hold_files_until_the_window_opens(tmp_path: Path,
                                                        sandbox: Sandbox) -> None:
    now = datetime.now()
    start = now + timedelta(hours=3)
    closed = f'"{clock(start)}-{clock(start + timedelta(hours=1))}"'
    folder, config = setup(tmp_path, sandbox, f"hours = {closed}")
    daemon = start_daemon(tmp_path, config)
    try:
        shutil.copy(make_movie(tmp_path / "a.mov", frames=3), folder / "evening.mov")
        job = wait_for(lambda: waits_because(config, "evening.mov", "waits for upload hours"),
                       20, what="held by upload hours")
        assert f"from {clock(start)}" in job["reason"] or \
            (start.date() != now.date() and clock(start) in job["reason"])
        assert "waits for upload hours" in (status(config)["hold"] or "")
        daemon.signal(signal.SIGUSR1)
        assert sandbox.state()["reservations"] == []

        # A window that includes now (taken live on SIGHUP): the file goes.
        open_now = f'"{clock(now - timedelta(hours=1))}-{clock(now + timedelta(hours=1))}"'
        set_config_key(config, "upload", "hours", open_now)
        daemon.signal(signal.SIGHUP)
        wait_for(lambda: job_state(config, "evening.mov") == "done", 15,
                 what="done inside upload hours")
        assert status(config)["hold"] is None
    finally:
        daemon.stop()


# --- bandwidth timetable ----------------------------------------------------------------------

def test_timetable_slot_in_force_limits_the_upload_and_sigusr2_lifts_it(
        tmp_path: Path, sandbox: Sandbox) -> None:
    now = datetime.now()
    # Now falls in the 200 KiB/s slot; a slower slot starts in an hour, then unlimited.
    table = (f'"{clock(now - timedelta(hours=1))},200KiB/s '
             f'{clock(now + timedelta(hours=1))},20KiB/s {clock(now + timedelta(hours=2))},off"')
    folder, config = setup(tmp_path, sandbox, f"bandwidth_limit = {table}")
    daemon = start_daemon(tmp_path, config)
    try:
        assert daemon.has_event("bandwidth.slot", rate=200 * 1024.0)
        movie = make_movie(tmp_path / "a.mov", frames=9)  # about 1 MB
        size = movie.stat().st_size
        assert size > 900_000
        shutil.copy(movie, folder / "limited.mov")
        wait_for(lambda: job_state(config, "limited.mov") == "done", 30, what="limited done")
        # 1 MB at 200 KiB/s, less one burst (a quarter second's worth) at the start.
        floor = (size - 0.25 * 200 * 1024) / (200 * 1024)
        took = upload_seconds(daemon, "limited.mov")
        # This slot's rate, not the table's lowest (20 KiB/s would take ten times as long).
        assert floor * 0.95 <= took < floor * 4

        daemon.signal(signal.SIGUSR2)
        wait_for(lambda: daemon.has_event("bandwidth.toggled", limit="off"), 10,
                 what="the limit toggled off")
        shutil.copy(make_movie(tmp_path / "b.mov", frames=9), folder / "free.mov")
        wait_for(lambda: job_state(config, "free.mov") == "done", 30, what="free done")
        # Unlimited on loopback is far under the limited floor (a loose bound: not a bench).
        assert upload_seconds(daemon, "free.mov") < floor / 2

        daemon.signal(signal.SIGUSR2)
        wait_for(lambda: daemon.has_event("bandwidth.toggled", limit="on"), 10,
                 what="the limit toggled back on")
    finally:
        daemon.stop()
