"""Issue 33, item 3: uploads wait for a recording. A writer in this process keeps writing a file
under the watch folder (any file: a .raw here) while a finished take waits; the daemon, the
sandbox and `status` are real processes."""

from __future__ import annotations

import contextlib
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from support import (
    Proc,
    Sandbox,
    captures_config,
    cli,
    job_state,
    logged,
    make_huge_movie,
    make_movie,
    start_daemon,
    status,
    wait_for,
)

HOLD = "waits while a recording is written: "


@contextlib.contextmanager
def recording(path: Path, every: float = 0.05, chunk: int = 64 * 1024) -> Iterator[None]:
    """A recorder writing `path` (appending `chunk` bytes every `every` seconds) meanwhile."""
    stop = threading.Event()

    def write() -> None:
        with open(path, "ab") as f:
            while not stop.wait(every):
                f.write(b"\0" * chunk)
                f.flush()

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        yield
    finally:
        stop.set()
        writer.join()


def test_pause_holds_a_finished_take_while_a_recording_is_written(
        tmp_path: Path, sandbox: Sandbox) -> None:
    captures, config = captures_config(tmp_path, sandbox.base_url, settle=0.5,
                                       upload='while_recording = "pause"')
    daemon = start_daemon(tmp_path, config)
    raw = captures / "jane" / "take2.raw"
    try:
        with recording(raw):
            shutil.copy(make_movie(tmp_path / "m.mov"), captures / "jane" / "take1.mov")
            # The finished take settles and is queued, and then waits: the hold is a notice,
            # `status`'s hold, and the waiting job's reason.
            doc = wait_for(lambda: (d := status(config))["hold"] and d["jobs"] and
                           d["jobs"][0].get("reason") and d, 30, what="the hold in status")
            assert doc["hold"] == HOLD + str(raw), doc
            assert doc["notices"]["recording"]["message"] == HOLD + str(raw), doc
            [job] = doc["jobs"]
            assert job["state"] == "queued" and job["reason"] == HOLD + str(raw), job
            text = cli("status", "--config", str(config)).stdout
            assert HOLD + str(raw) in text
            # While the writer writes (several settle periods), nothing is reserved.
            until = time.monotonic() + 3.0
            while time.monotonic() < until:
                assert not sandbox.reservations_for("take1.mov")
                assert job_state(config, "take1.mov") == "queued"
        # Once it stops, the take goes, and the hold is gone.
        wait_for(lambda: job_state(config, "take1.mov") == "done", 30, what="the upload")
        assert len(sandbox.reservations_for("take1.mov")) == 1
        after = status(config)
        assert after["hold"] is None and "recording" not in after["notices"], after
        assert daemon.has_event("station.recording", path=str(raw))
        assert daemon.has_event("station.recording_ended", path=str(raw))
    finally:
        assert daemon.stop() == 0


def _upload_seconds(daemon: Proc, name: str) -> float:
    """From upload.started to upload.done of `name`, as this process sees the daemon log."""
    wait_for(lambda: logged(daemon, "upload.started", name), 30, interval=0.02,
             what="the upload to start")
    began = time.monotonic()
    wait_for(lambda: logged(daemon, "upload.done", name), 60, interval=0.02,
             what="the upload to end")
    return time.monotonic() - began


def test_a_rate_caps_uploads_while_a_recording_is_written(
        tmp_path: Path, sandbox: Sandbox) -> None:
    size, rate = 1536 * 1024, 128 * 1024  # 12 s at the cap; an unlimited loopback takes < 1 s
    captures, config = captures_config(tmp_path, sandbox.base_url, settle=0.5,
                                       upload='while_recording = "128KiB/s"')
    daemon = start_daemon(tmp_path, config)
    try:
        with recording(captures / "jane" / "take2.raw"):
            wait_for(lambda: daemon.has_event("bandwidth.recording", rate=rate), 30,
                     what="the cap")
            make_huge_movie(captures / "jane" / "take1.mov", size)
            seconds = _upload_seconds(daemon, "take1.mov")
        assert size / seconds <= 2 * rate, (size, seconds)  # capped (generous bounds)
        wait_for(lambda: daemon.has_event("bandwidth.recording", rate=0.0), 30,
                 what="the cap lifted")
        # Without a recording the next take goes at the link's pace.
        make_huge_movie(captures / "jane" / "take3.mov", size)
        assert size / _upload_seconds(daemon, "take3.mov") > 2 * rate
        assert job_state(config, "take1.mov") == "done"
    finally:
        assert daemon.stop() == 0
