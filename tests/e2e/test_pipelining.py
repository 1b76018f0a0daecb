"""Reservations overlap uploads (issue 13): with a slow API (the sandbox's latency fault) and
one upload slot, each job's reservation is made while the job before it is still uploading, so
the slot goes from one upload straight to the next. Asserted on the order of the daemon's own
log lines, not on timing ratios."""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Any

from support import (
    Proc,
    Sandbox,
    captures_config,
    jobs_by_name,
    make_movie,
    sha256,
    start_daemon,
    wait_for,
)

NAMES = [f"take{i}.mov" for i in range(1, 5)]


def _lines(daemon: Proc, event: str) -> dict[int, int]:
    """job id -> index of its (first) `event` line in the daemon's log."""
    out: dict[int, int] = {}
    for i, e in enumerate(daemon.events()):
        if e.get("event") == event and e.get("job_id") is not None:
            out.setdefault(e["job_id"], i)
    return out


def _start(tmp_path: Path, latency: float, upload: str) -> tuple[Sandbox, Path, Path, Proc]:
    box = Sandbox(tmp_path / "sandbox", latency=latency).start()
    captures, config = captures_config(tmp_path, box.base_url, settle=0.5, upload=upload)
    return box, captures, config, start_daemon(tmp_path, config)


def _drop(tmp_path: Path, captures: Path, names: list[str], frames: int) -> dict[str, Path]:
    """Distinct movies, renamed in together so they are queued at about the same time."""
    src = {n: make_movie(tmp_path / "src" / n, frames=frames) for n in names}
    for name, path in src.items():
        os.link(path, tmp_path / "src" / f"in-{name}")
    for name in names:
        os.rename(tmp_path / "src" / f"in-{name}", captures / "jane" / name)
    return src


def test_the_next_job_is_reserved_while_the_slot_uploads(tmp_path: Path) -> None:
    # One slot; each upload held to ~0.5 s by the bandwidth limit, each reservation 0.2 s.
    box, captures, config, daemon = _start(
        tmp_path, 0.2, 'concurrency = 1\nbandwidth_limit = "2M"')
    try:
        src = _drop(tmp_path, captures, NAMES, frames=20)
        wait_for(lambda: all(j.get("state") == "done" for j in
                             [jobs_by_name(config).get(n, {}) for n in NAMES]), 90,
                 what="every take uploaded")
        reserved, started, done = (_lines(daemon, e) for e in
                                   ("job.reserved", "upload.started", "upload.accepted"))
        order = sorted(done, key=done.__getitem__)  # jobs in the order the slot uploaded them
        assert len(order) == len(NAMES)
        for prev, nxt in itertools.pairwise(order):
            # Reserved while the previous one was uploading, started after it (one upload
            # sends at a time: the next may start while the endpoint answers the last).
            assert reserved[nxt] < done[prev] and started[prev] < started[nxt], (
                prev, nxt, reserved, started, done)
        jobs = jobs_by_name(config)
        for name in NAMES:
            uploads = box.uploads_for(name)
            assert len(uploads) == 1 and uploads[0]["sha256"] == sha256(src[name])
            assert len(box.reservations_for(name)) == 1  # no window wasted
            assert jobs[name]["attempts"] == 1
    finally:
        assert daemon.stop() == 0
        box.stop()


def test_jobs_reserved_ahead_go_back_to_the_queue_on_stop_and_upload_after(
        tmp_path: Path) -> None:
    # A slow link: the first upload is still running when the daemon is stopped, with the
    # others already reserved ahead.
    box, captures, config, daemon = _start(
        tmp_path, 0.1, 'concurrency = 1\nbandwidth_limit = "200K"\nshutdown_timeout = 0.5')
    try:
        src = _drop(tmp_path, captures, NAMES, frames=20)
        wait_for(lambda: len(_lines(daemon, "job.reserved")) >= 2 and
                 _lines(daemon, "upload.started"), 60, what="an upload and a job reserved ahead")
        assert daemon.stop() == 0
        jobs: dict[str, Any] = jobs_by_name(config)
        assert {j["state"] for j in jobs.values()} <= {"queued", "pending"}, jobs
        assert all(j["attempts"] == 0 for j in jobs.values()), jobs  # not counted
        assert daemon.has_event("upload.interrupted")
        # Back up without the limit: everything goes, once.
        text = config.read_text().replace('bandwidth_limit = "200K"', "")
        config.write_text(text)
        daemon = start_daemon(tmp_path, config, name="daemon2.log")
        wait_for(lambda: all(j.get("state") == "done" for j in
                             [jobs_by_name(config).get(n, {}) for n in NAMES]), 90,
                 what="every take uploaded after the restart")
        for name in NAMES:
            uploads = box.uploads_for(name)
            assert len(uploads) == 1 and uploads[0]["sha256"] == sha256(src[name])
    finally:
        daemon.stop()
        box.stop()
