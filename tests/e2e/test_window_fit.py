"""A file the bandwidth limit lets through too slowly for its upload window: the endpoint checks
the window's expiry when the body ends, so every attempt lapses. The daemon must not create
captures without end: it measures the rate, and the job fails with a plain reason (no period
fits) or waits for the timetable period that fits."""

from __future__ import annotations

import re
import signal
from datetime import datetime, timedelta
from pathlib import Path

from support import (
    Sandbox,
    captures_config,
    jobs_by_name,
    make_huge_movie,
    make_movie,
    start_daemon,
    wait_for,
)

# 300+ KiB at 50 KiB/s takes 6+ s (long enough to measure); the sandbox's windows last 2 s
# (1-2 s as the daemon sees them: the expiry is given in whole seconds).
LIMIT = "50KiB/s"
FRAMES = 3  # ~300 KiB


def _station(tmp_path: Path, limit: str, window: float = 2.0) -> tuple[Sandbox, Path, Path]:
    box = Sandbox(tmp_path / "sandbox", upload_window=window).start()
    box.faults(expiry_at_end=True)
    captures, config = captures_config(
        tmp_path, box.base_url, settle=0.3,
        upload=f'reserve_margin_seconds = 0\nbandwidth_limit = "{limit}"')
    return box, captures, config


def _drop(tmp_path: Path, captures: Path, name: str) -> None:
    movie = make_movie(tmp_path / "src" / name, frames=FRAMES)
    assert movie.stat().st_size > 300 * 1024
    (captures / "jane" / name).write_bytes(movie.read_bytes())


def test_a_window_no_period_fits_fails_with_a_plain_reason(tmp_path: Path) -> None:
    box, captures, config = _station(tmp_path, LIMIT)
    daemon = start_daemon(tmp_path, config)
    try:
        _drop(tmp_path, captures, "slow.mov")
        # Unfixed, each lapse re-reserves at once and this never ends.
        job = wait_for(lambda: (j := jobs_by_name(config).get("slow.mov")) and
                       j["state"] in ("failed", "done") and j, 45, what="the job to end")
        assert job["state"] == "failed"
        reason = job["last_error"]
        assert job["reason"] == reason  # what `status` shows
        assert "cannot be uploaded inside its upload window" in reason, reason
        assert "50KiB/s" in reason and "KiB file" in reason, reason
        assert re.search(r"lasts [12] s", reason), reason
        assert "raise [upload] bandwidth_limit" in reason and "free hours" in reason, reason
        assert "the server refused it" not in reason
        # Two lapses measured the rate (one alone fails nothing: issue 28.7); nothing more
        # was reserved for it, now or later.
        assert len(box.reservations_for("slow.mov")) == 2
        assert daemon.has_event("job.lapses_ended", outcome="fail")
        assert box.uploads_for("slow.mov") == []
    finally:
        assert daemon.stop() == 0
        box.stop()


def test_a_window_that_fits_a_later_period_waits_for_it(tmp_path: Path) -> None:
    now = datetime.now()
    # Slow from a minute ago; unlimited from three minutes on (far beyond this test's end).
    free = (now + timedelta(minutes=3)).replace(second=0, microsecond=0)
    table = f"{now - timedelta(minutes=1):%H:%M},{LIMIT} {free:%H:%M},off"
    box, captures, config = _station(tmp_path, table)
    daemon = start_daemon(tmp_path, config)
    try:
        _drop(tmp_path, captures, "later.mov")
        job = wait_for(lambda: (j := jobs_by_name(config).get("later.mov")) and
                       j["state"] in ("queued", "failed", "done") and
                       j.get("last_error") and j, 45, what="the job to wait or end")
        assert job["state"] == "queued", job
        reason = job["last_error"]
        assert job["reason"] == reason  # what `status` shows
        assert reason.startswith(f"waits until {free:%H:%M}, when the bandwidth limit is off"), \
            reason
        assert re.search(r"longer than the [12] s upload window", reason), reason
        assert abs(job["next_attempt_at"] - free.timestamp()) < 1.0
        assert job["attempts"] == 0  # waiting is not a failure
        assert len(box.reservations_for("later.mov")) == 1
    finally:
        assert daemon.stop() == 0
        box.stop()


def test_a_rate_measured_across_a_sigusr2_toggle_fails_no_later_file(tmp_path: Path) -> None:
    """Issue 28.7: an upload that ran limited, then unlimited after a SIGUSR2 toggle, averaged
    the two; recorded with the limit in force at its end (none) it read as a slow link, and a
    later larger file "never fit" the window and failed for good. It must count for nothing."""
    box, captures, config = _station(tmp_path, LIMIT, window=10.0)
    daemon = start_daemon(tmp_path, config)
    try:
        first = make_huge_movie(tmp_path / "src" / "first.mov", 1024 * 1024)
        (captures / "jane" / "first.mov").write_bytes(first.read_bytes())
        # Past MIN_MEASURE (4 s) at 50 KiB/s, so the upload is measured: then lift the limit.
        wait_for(lambda: (jobs_by_name(config).get("first.mov") or {}).get(
            "bytes_sent", 0) >= 260 * 1024, 30, what="five seconds of the limited upload")
        daemon.signal(signal.SIGUSR2)
        wait_for(lambda: (jobs_by_name(config).get("first.mov") or {}).get("state") == "done",
                 30, what="the first upload to finish unlimited")
        # ~1 MiB over ~5 s is ~200 KiB/s: 8 MiB at that takes ~40 s, beyond the 10 s window.
        later = make_huge_movie(tmp_path / "src" / "later.mov", 8 * 1024 * 1024)
        (captures / "jane" / "later.mov").write_bytes(later.read_bytes())
        job = wait_for(lambda: (j := jobs_by_name(config).get("later.mov")) and
                       j["state"] in ("failed", "done") and j, 45, what="the later job to end")
        assert job["state"] == "done", job.get("last_error")
        assert not daemon.has_event("job.lapses_ended")
    finally:
        assert daemon.stop() == 0
        box.stop()
