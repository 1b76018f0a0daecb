"""Issue 10, part 1: the station's own faults around the network and the process — a rotated
token, a watch root removed and made again, SIGTERM on a stalled link, and API answers that
trickle, swell or lack what an upload needs. Daemon and sandbox run as real processes.
(Names, a deleted or read-only database and a full disk: test_station_faults_local.py.)"""

from __future__ import annotations

import shutil
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from support import (
    Sandbox,
    captures_config,
    cli,
    job_state,
    jobs_by_name,
    make_movie,
    peak_rss_mib,
    set_config_key,
    start_daemon,
    status,
    wait_for,
)

NO_ENV_TOKEN = ""  # UPLIFT_API_TOKEN="" counts as unset: the daemon falls back to token_file
ROTATED = "rotated-token-4c1d9e"


def setup(tmp_path: Path, box: Sandbox, upload: str = "", extra: str = "") -> tuple[Path, Path]:
    return captures_config(tmp_path, box.base_url, upload=upload, extra=extra)


def notice_with(config: Path, *words: str) -> dict[str, Any] | None:
    """The first status notice whose message holds any of `words` (case-insensitive)."""
    for notice in status(config)["notices"].values():
        if any(w.lower() in notice["message"].lower() for w in words):
            return notice
    return None


# ---- 1. token rotation ------------------------------------------------------------------------

def test_rotated_token_file_is_picked_up_on_sighup(tmp_path: Path, sandbox: Sandbox) -> None:
    captures, config = setup(tmp_path, sandbox)
    token_file = tmp_path / "token"
    token_file.write_text(sandbox.token + "\n")
    set_config_key(config, "api", "token_file", f'"{token_file}"')
    daemon = start_daemon(tmp_path, config, token=NO_ENV_TOKEN)
    try:
        sandbox.set_token(ROTATED)  # the admin rotated the key at Uplift; the file is stale
        shutil.copy(make_movie(tmp_path / "m.mov", frames=3), captures / "jane" / "rot.mov")
        wait_for(lambda: notice_with(config, "credentials", "token"), 20,
                 what="a credentials notice")
        assert job_state(config, "rot.mov") in ("queued", "pending")  # waits, not failed
        # `check` must tell the same story as status while the file holds the rejected token.
        stale = cli("check", "--config", str(config), env={"UPLIFT_API_TOKEN": NO_ENV_TOKEN})
        assert stale.returncode == 1, stale.stdout
        assert any(line.startswith("FAIL") and "token" in line
                   for line in stale.stdout.splitlines()), stale.stdout

        token_file.write_text(ROTATED + "\n")
        daemon.signal(signal.SIGHUP)  # systemctl reload
        wait_for(lambda: job_state(config, "rot.mov") == "done", 10, what="done after SIGHUP")
        wait_for(lambda: notice_with(config, "credentials", "token") is None, 10,
                 what="the credentials notice to clear")
        fresh = cli("check", "--config", str(config), env={"UPLIFT_API_TOKEN": NO_ENV_TOKEN})
        assert fresh.returncode == 0, fresh.stdout
        assert daemon.popen.poll() is None
    finally:
        assert daemon.stop() == 0
    assert ROTATED not in daemon.log_path.read_text()  # the new secret is redacted too


# ---- 2. a watch root removed and made again ---------------------------------------------------

def test_removed_watch_root_is_reported_and_rewatched_when_back(tmp_path: Path,
                                                                sandbox: Sandbox) -> None:
    # A 300 s rescan: only noticing the root come back (not the periodic walk) can pass this.
    captures, config = setup(tmp_path, sandbox, extra="[watching]\nrescan_seconds = 300")
    daemon = start_daemon(tmp_path, config)
    try:
        shutil.rmtree(captures)
        wait_for(lambda: notice_with(config, str(captures), "watch folder"), 5,
                 what="a notice naming the removed watch folder")
        assert daemon.popen.poll() is None  # the lead's choice: keep running, keep telling

        (captures / "jane").mkdir(parents=True)
        shutil.copy(make_movie(tmp_path / "m.mov", frames=3), captures / "jane" / "back.mov")
        wait_for(lambda: job_state(config, "back.mov") == "done", 10,
                 what="a file in the re-made root to be done")
        wait_for(lambda: notice_with(config, str(captures), "watch folder") is None, 10,
                 what="the watch-folder notice to clear")
    finally:
        assert daemon.stop() == 0


# ---- 3. SIGTERM on a stalled link -------------------------------------------------------------

def stalled_upload(tmp_path: Path, box: Sandbox, shutdown_timeout: float) -> tuple[Path, Any]:
    captures, config = setup(tmp_path, box, f"shutdown_timeout = {shutdown_timeout}")
    box.faults(upload_rate=2000)  # bytes/s: a 2 MB file would take 17 minutes
    movie = make_movie(tmp_path / "m.mov", frames=42)  # ~2 MB
    daemon = start_daemon(tmp_path, config)
    shutil.copy(movie, captures / "jane" / "stall.mov")
    wait_for(lambda: job_state(config, "stall.mov") == "uploading", 30, what="uploading")
    return config, daemon


def test_sigterm_on_a_stalled_upload_exits_0_within_the_timeout(tmp_path: Path,
                                                                sandbox: Sandbox) -> None:
    config, daemon = stalled_upload(tmp_path, sandbox, 3)
    try:
        started = time.monotonic()
        daemon.signal(signal.SIGTERM)
        code = daemon.popen.wait(3 + 5 + 5)  # generous wait; the bound is asserted below
        took = time.monotonic() - started
        assert code == 0
        assert took < 3 + 5, f"exited {took:.1f} s after SIGTERM (shutdown_timeout 3)"
        assert job_state(config, "stall.mov") == "queued"  # parked for the next start
        sandbox.faults(upload_rate=None)
        daemon = start_daemon(tmp_path, config, name="daemon-2.log")
        wait_for(lambda: job_state(config, "stall.mov") == "done", 30, what="done after restart")
        assert len(sandbox.uploads_for("stall.mov")) == 1
    finally:
        daemon.kill()


def test_second_sigterm_during_the_wait_exits_at_once(tmp_path: Path, sandbox: Sandbox) -> None:
    _, daemon = stalled_upload(tmp_path, sandbox, 30)
    try:
        daemon.signal(signal.SIGTERM)
        wait_for(lambda: daemon.has_event("daemon.stopping"), 5, what="daemon.stopping")
        assert daemon.popen.poll() is None  # still giving the upload its 30 s
        started = time.monotonic()
        daemon.signal(signal.SIGTERM)
        wait_for(lambda: daemon.popen.poll() is not None, 5, interval=0.05,
                 what="exit after the second SIGTERM")
        took = time.monotonic() - started
        assert took < 2, f"the second SIGTERM took {took:.1f} s"
    finally:
        daemon.kill()


# ---- 7. bad API answers -----------------------------------------------------------------------

def test_trickled_reservation_is_cut_by_a_total_deadline(tmp_path: Path,
                                                         sandbox: Sandbox) -> None:
    captures, config = setup(tmp_path, sandbox)
    # A byte every 2 s never trips a 3 s read timeout: only a deadline on the whole request can
    # cut this answer (about 40 minutes long). The wait allows a 60 s default deadline.
    set_config_key(config, "api", "read_timeout", "3.0")
    sandbox.faults(reserve=[{"trickle": 2.0}])
    daemon = start_daemon(tmp_path, config)
    try:
        shutil.copy(make_movie(tmp_path / "m.mov", frames=3), captures / "jane" / "slow.mov")
        wait_for(lambda: len(sandbox.reservations_for("slow.mov")) >= 1, 20, what="reserve")
        wait_for(lambda: job_state(config, "slow.mov") == "done", 80,
                 what="done once the trickled answer was given up")
        assert len(sandbox.reservations_for("slow.mov")) == 2
        (upload,) = sandbox.uploads_for("slow.mov")
        assert upload["session_id"] == sandbox.reservations_for("slow.mov")[1]["session_id"]
    finally:
        assert daemon.stop() == 0


def test_huge_reservation_answer_is_refused_without_eating_memory(tmp_path: Path,
                                                                  sandbox: Sandbox) -> None:
    captures, config = setup(tmp_path, sandbox)
    sandbox.faults(reserve=[{"huge": 300_000_000}])
    daemon = start_daemon(tmp_path, config)
    try:
        shutil.copy(make_movie(tmp_path / "m.mov", frames=3), captures / "jane" / "big.mov")
        wait_for(lambda: job_state(config, "big.mov") == "done", 40, what="done after a retry")
        assert len(sandbox.reservations_for("big.mov")) == 2  # the huge answer was not used
        peak = peak_rss_mib(daemon.popen.pid)
        assert peak < 150, f"the daemon's RSS peaked at {peak:.0f} MiB"
    finally:
        assert daemon.stop() == 0


@pytest.mark.parametrize("fault", [
    {"omit": ["upload_fields"]},
    {"set": {"upload_url": "http://example.invalid/x"}},  # not https, not loopback
    {"set": {"upload_expires_at": "2020-01-01T00:00:00Z"}},  # already past
], ids=["no-upload-fields", "plain-http-url", "expired-window"])
def test_unusable_reservation_answer_fails_after_a_few_captures(
        tmp_path: Path, sandbox: Sandbox, fault: dict[str, Any]) -> None:
    captures, config = setup(tmp_path, sandbox)
    sandbox.faults(reserve=[fault] * 10)
    daemon = start_daemon(tmp_path, config)
    try:
        shutil.copy(make_movie(tmp_path / "m.mov", frames=3), captures / "jane" / "odd.mov")
        wait_for(lambda: job_state(config, "odd.mov") == "failed", 60,
                 what="failed after a bounded number of captures")
        assert 1 <= len(sandbox.reservations_for("odd.mov")) <= 4
        reason = jobs_by_name(config)["odd.mov"]["last_error"] or ""
        assert reason and "Traceback" not in reason and len(reason) < 400, reason
        assert not sandbox.uploads_for("odd.mov")
        assert daemon.popen.poll() is None
    finally:
        assert daemon.stop() == 0
