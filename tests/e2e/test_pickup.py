"""Instant pickup (issue 23), with the daemon as a subprocess and real writers: a movie whose
writer closed it complete is uploaded without waiting `settle_seconds` (30 s here, so any
upload within the tests' deadlines went early); a writer that pauses without closing, or
closes an incomplete movie and reopens it to append, never has a partial file stored; a
complete movie changed after its upload is a new capture that names the earlier one; polled
folders keep settle."""

from __future__ import annotations

import contextlib
import os
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import qt_atoms as qt
from support import (
    ATHLETE,
    Proc,
    Sandbox,
    captures_config,
    cli,
    jobs_by_name,
    logged,
    make_movie,
    sha256,
    start_daemon,
    status,
    wait_for,
)

SETTLE = 30.0  # longer than every wait below: what goes, went on its writer's close


def _setup(tmp_path: Path, sandbox: Sandbox, settle: float = SETTLE, poll: bool = False,
           frames: int = 12) -> tuple[Path, Path, bytes]:
    captures, config = captures_config(
        tmp_path, sandbox.base_url, athlete=ATHLETE, settle=settle,
        extra='[logging]\nlevel = "debug"\n[watching]\npoll_interval = 0.2')
    if poll:
        text = config.read_text().replace("[[watch]]\n", "[[watch]]\npoll = true\n")
        config.write_text(text)
    movie = make_movie(tmp_path / "src" / "clip.mov", frames).read_bytes()
    return captures / ATHLETE, config, movie


def _write(path: Path, data: bytes, mode: str = "wb") -> None:
    """One writer session: open, write, close (the close is IN_CLOSE_WRITE)."""
    with open(path, mode) as f:
        f.write(data)


@contextlib.contextmanager
def _running(tmp_path: Path, config: Path) -> Iterator[Proc]:
    """The daemon for the block; at its end it is stopped and must exit 0."""
    daemon = start_daemon(tmp_path, config)
    try:
        yield daemon
    finally:
        assert daemon.stop() == 0


def _done(config: Path, name: str) -> bool:
    return jobs_by_name(config).get(name, {}).get("state") == "done"


def test_a_movie_closed_complete_goes_without_waiting_for_settle(
        tmp_path: Path, sandbox: Sandbox) -> None:
    folder, config, movie = _setup(tmp_path, sandbox)
    with _running(tmp_path, config):
        t0 = time.monotonic()
        _write(folder / "clip.mov", movie)
        wait_for(lambda: _done(config, "clip.mov"), 15, 0.05, what="uploaded on its close")
        assert time.monotonic() - t0 < SETTLE
        (upload,) = sandbox.uploads_for("clip.mov")
        assert upload["sha256"] == sha256(folder / "clip.mov")


def test_a_writer_that_closes_incomplete_and_reopens_to_append(
        tmp_path: Path, sandbox: Sandbox) -> None:
    """Three sessions of one writer: the movie cut inside its media data, then up to the
    media's end (atoms tile the file but there is no moov yet), then the rest. Each close
    is looked at; only the last, complete one is uploaded."""
    folder, config, movie = _setup(tmp_path, sandbox)
    (moov,) = [(s, e) for kind, s, e in qt.top_atoms(movie) if kind == b"moov"]
    assert moov[1] == len(movie), "the muxer writes moov last"
    cuts = [moov[0] // 2, moov[0], len(movie)]
    path = folder / "clip.mov"
    with _running(tmp_path, config) as daemon:
        start = 0
        for n, cut in enumerate(cuts):
            _write(path, movie[start:cut], "wb" if n == 0 else "ab")
            start = cut
            if cut < len(movie):  # the daemon looked at this close and waits
                waits = n + 1
                wait_for(lambda w=waits: sum(  # type: ignore[misc]
                    1 for e in daemon.events() if e.get("event") == "watch.pickup_waits"
                    and "incomplete" in e.get("reason", "")) >= w, 10,
                    0.05, what=f"close {n + 1} looked at")
                assert not sandbox.reservations_for("clip.mov")
        wait_for(lambda: _done(config, "clip.mov"), 15, 0.05, what="uploaded on the last close")
        uploads = sandbox.uploads_for("clip.mov")
        assert [u["sha256"] for u in uploads] == [sha256(path)]
        assert path.read_bytes() == movie
        assert len(status(config)["jobs"]) == 1


def test_a_movie_written_index_first_goes_once_with_every_sample_in(
        tmp_path: Path, sandbox: Sandbox) -> None:
    """Issue 28 item 2: a recorder writes ftyp + moov + an mdat of size 0 ("to the end of the
    file"), then appends the samples in pieces, closing the file after each. The atoms tile
    the file at every close; only the last close, with every sample the index names in the
    file, is uploaded, once, and is no capture "changed after it was uploaded"."""
    folder, config, movie = _setup(tmp_path, sandbox)
    header, samples = qt.index_first(movie)
    pieces = [samples[len(samples) * n // 6:len(samples) * (n + 1) // 6] for n in range(6)]
    path = folder / "clip.mov"
    with _running(tmp_path, config) as daemon:
        for n, piece in enumerate([header, *pieces[:-1]]):
            _write(path, piece, "wb" if n == 0 else "ab")
            wait_for(lambda w=n + 1: sum(  # type: ignore[misc]
                1 for e in daemon.events() if e.get("event") in ("watch.pickup_waits",
                                                                 "job.queued")) >= w,
                10, 0.05, what=f"close {n + 1} looked at")
            assert not logged(daemon, "job.queued", "clip.mov"), \
                f"queued at close {n + 1}, {path.stat().st_size} of " \
                f"{len(header) + len(samples)} bytes written"
        # Why it waits, in words: the index names more than the file holds.
        assert all(e["reason"].startswith("recording is incomplete: the media its index (moov) "
                                          "lists runs to")
                   for e in daemon.events() if e.get("event") == "watch.pickup_waits")
        _write(path, pieces[-1], "ab")
        wait_for(lambda: _done(config, "clip.mov"), 15, 0.05, what="uploaded on the last close")
    assert path.read_bytes() == header + samples
    assert [u["sha256"] for u in sandbox.uploads_for("clip.mov")] == [sha256(path)]
    (job,) = status(config)["jobs"]
    assert "earlier_upload" not in job
    assert "changed after it was uploaded" not in cli("status", "--config", str(config)).stdout


def test_a_writer_that_pauses_without_closing_is_not_taken_early(
        tmp_path: Path, sandbox: Sandbox) -> None:
    folder, config, movie = _setup(tmp_path, sandbox)
    path = folder / "clip.mov"
    with _running(tmp_path, config) as daemon:
        with open(path, "wb") as f:
            f.write(movie[: len(movie) // 2])
            f.flush()
            os.fsync(f.fileno())
            wait_for(lambda: logged(daemon, "job.seen", "clip.mov"), 10, 0.05,
                     what="the growing file seen")
            f.write(movie[len(movie) // 2: -100])  # the writer pauses with the file open
            f.flush()
            time.sleep(1.0)  # the pause: no close, so nothing may go
            assert not logged(daemon, "job.queued", "clip.mov")
            f.write(movie[-100:])
        wait_for(lambda: _done(config, "clip.mov"), 15, 0.05, what="uploaded on its close")
        (upload,) = sandbox.uploads_for("clip.mov")
        assert upload["sha256"] == sha256(path)


def test_a_movie_changed_after_its_upload_is_a_new_capture_naming_the_earlier(
        tmp_path: Path, sandbox: Sandbox) -> None:
    folder, config, movie = _setup(tmp_path, sandbox)
    path = folder / "clip.mov"
    with _running(tmp_path, config) as daemon:
        _write(path, movie)
        wait_for(lambda: _done(config, "clip.mov"), 15, 0.05, what="the first upload")
        first = jobs_by_name(config)["clip.mov"]
        _write(path, struct.pack(">I4s", 16, b"free") + bytes(8), "ab")  # still complete
        wait_for(lambda: len(sandbox.uploads_for("clip.mov")) == 2, 15, 0.05,
                 what="the changed movie uploaded as a new capture")
        jobs = [j for j in status(config)["jobs"] if j["id"] != first["id"]]
        (second,) = jobs
        assert second["earlier_upload"] == {"job_id": first["id"],
                                            "session_id": first["session_id"]}
        seen = [e for e in daemon.events() if e.get("event") == "job.seen"]
        assert [e.get("earlier_job") for e in seen] == [None, first["id"]]
        text = cli("status", "--config", str(config)).stdout
        assert f"changed after it was uploaded as #{first['id']}" in text


def test_a_polled_folder_keeps_settle(tmp_path: Path, sandbox: Sandbox) -> None:
    folder, config, movie = _setup(tmp_path, sandbox, settle=2.0, poll=True)
    with _running(tmp_path, config) as daemon:
        _write(folder / "clip.mov", movie)
        closed = time.time()
        wait_for(lambda: _done(config, "clip.mov"), 20, 0.1, what="uploaded after settle")
        (queued,) = [e for e in daemon.events() if e.get("event") == "job.queued"]
        from datetime import datetime
        at = datetime.fromisoformat(queued["timestamp"].replace("Z", "+00:00")).timestamp()
        assert at - closed >= 2.0
