"""The intake against odd files (issue 19 items 4, 5), in-process with a real job table: a pipe,
socket or folder named like a movie is never opened and never blocks settling; a damaged movie
ends `failed` with a plain reason, not `pending` with a traceback at every rescan."""

from __future__ import annotations

import os
import shutil
import socket
import threading
from pathlib import Path

import qt_atoms as qt
import structlog
from support import ATHLETE, make_movie, wait_for

from daemon.jobs.models import JobState
from daemon.jobs.store import Store
from daemon.watch import movie
from daemon.watch.intake import Watcher


def job(store: Store, name: str):
    return next((j for j in store.jobs() if Path(j.path).name == name), None)


def ended(store: Store, name: str, state: JobState, timeout: float = 10):
    return wait_for(lambda: (j := job(store, name)) is not None and j.state == state and j,
                    timeout, 0.05, what=f"{name} {state}")


def test_damaged_movies_end_failed_with_a_reason_and_no_traceback(watched_store, tmp_path) -> None:
    cfg, store, captures = watched_store
    folder = captures / ATHLETE
    watcher = Watcher(cfg, store, on_queued=lambda: None)
    with structlog.testing.capture_logs() as events:
        watcher.start()
        try:
            (folder / "no-mvhd.mov").write_bytes(qt.movie(qt.atom(b"mvhd"), qt.video_trak()))
            (folder / "no-tkhd.mov").write_bytes(
                qt.movie(qt.mvhd(), qt.atom(b"trak", qt.atom(b"tkhd"))))
            (folder / "far-future.mov").write_bytes(
                qt.movie(qt.mvhd(2**64 - 1, version=1), qt.video_trak()))
            big = folder / "big-index.mov"  # a 65 MiB moov, as a hole: no disk used
            head = qt.ftyp() + qt.atom(b"mdat", bytes(32))
            big.write_bytes(head + (8 + movie.MAX_MOOV + 1).to_bytes(4, "big") + b"moov")
            os.truncate(big, len(head) + 8 + movie.MAX_MOOV + 1)

            assert "movie header (mvhd) is damaged" in \
                ended(store, "no-mvhd.mov", JobState.FAILED).last_error
            assert "track header (tkhd) is damaged" in \
                ended(store, "no-tkhd.mov", JobState.FAILED).last_error
            assert "larger than the 64 MiB" in \
                ended(store, "big-index.mov", JobState.FAILED).last_error
            # A garbage clock is no reason to refuse: the file's mtime is its capture time.
            ended(store, "far-future.mov", JobState.QUEUED)
            watcher.rescan()  # a rescan does not bring them back
            make_movie(folder / "after.mov", 2)
            ended(store, "after.mov", JobState.QUEUED)
        finally:
            watcher.stop()
    assert not [e for e in events if e["log_level"] in ("error", "critical")
                or e.get("exc_info")], events
    assert {j.state for j in store.jobs() if j.path.endswith(("mvhd.mov", "tkhd.mov",
                                                              "index.mov"))} == {"failed"}


def test_pipes_sockets_and_folders_named_like_movies_are_never_opened(watched_store,
                                                                      tmp_path) -> None:
    cfg, store, captures = watched_store
    folder = captures / ATHLETE
    stranger = captures / "stranger"  # not an athlete: its file waits, pending, with a reason
    stranger.mkdir()
    make_movie(stranger / "waits.mov", 2)
    watcher = Watcher(cfg, store, on_queued=lambda: None)
    sock = socket.socket(socket.AF_UNIX)
    with structlog.testing.capture_logs() as events:
        watcher.start()
        try:
            ended(store, "waits.mov", JobState.PENDING)
            os.mkfifo(folder / "pipe.mov")  # open() of it blocks until a writer comes
            dirfd = os.open(folder, os.O_RDONLY)  # a path short enough for AF_UNIX
            try:
                sock.bind(f"/proc/self/fd/{dirfd}/socket.mov")
            finally:
                os.close(dirfd)
            session = folder / "session"
            session.mkdir()
            os.mkfifo(session / "capture.toml")  # a sidecar read would block just the same
            make_movie(tmp_path / "s.mov", 2)
            shutil.copy(tmp_path / "s.mov", session / "in-session.mov")
            make_movie(folder / "good.mov", 2)
            ended(store, "good.mov", JobState.QUEUED)
            held = ended(store, "in-session.mov", JobState.PENDING)
            wait_for(lambda: (j := job(store, "in-session.mov")) and j.last_error, 10)
            assert "capture.toml: not a regular file (a pipe)" in \
                job(store, "in-session.mov").last_error, held

            # A waiting file replaced by a pipe: its job ends, skipped, with the reason.
            (stranger / "waits.mov").unlink()
            os.mkfifo(stranger / "waits.mov")
            watcher.rescan()
            assert "not a regular file (a pipe)" in \
                ended(store, "waits.mov", JobState.SKIPPED).last_error
            (folder / "folder.mov").mkdir()  # walked as a folder; a file named that is not
            watcher.rescan()
            make_movie(folder / "later.mov", 2)
            ended(store, "later.mov", JobState.QUEUED)
        finally:
            watcher.stop()
            sock.close()
    assert job(store, "pipe.mov") is None and job(store, "socket.mov") is None
    refused = {Path(e["path"]).name: e["reason"] for e in events
               if e["event"] == "watch.not_regular"}
    assert refused == {"pipe.mov": "not a regular file (a pipe)",
                       "socket.mov": "not a regular file (a socket)",
                       "waits.mov": "not a regular file (a pipe)"}
    assert not [e for e in events if e.get("exc_info")]
    assert watcher.queue.stuck(0.0) is None and threading.active_count() < 50
