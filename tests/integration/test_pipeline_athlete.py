"""A new capture is for its folder's link as the reservation is made (issue 28, item 3a), on a
real job table of each dialect and the in-process sandbox: a job queued with the athlete the
intake read before its (slow) movie read, while the link changed or went, is reserved for the
link as it stands, or goes back to waiting for an athlete; a capture that exists keeps its."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path, PurePath

import httpx
import pytest
from support import TOKEN, wait_for, write_config

from daemon import config as config_mod
from daemon.jobs import directory
from daemon.jobs.athletes import AthleteTable, unknown_folders
from daemon.jobs.models import Job, JobState
from daemon.jobs.store import Ready, Store
from daemon.net.api import ApiClient
from daemon.net.upload import Uploader
from daemon.sandbox import server
from daemon.timeutil import parse_iso
from daemon.watch import layout
from daemon.work.worker import Worker

TOM = "0b6f0c52-1d0e-4c3a-9a5e-2f1f4b7d9e01"
ANA = "7c2e9a10-55aa-4f0e-8d3b-6a1c0e9b2f44"
TAKEN = "2026-01-01T10:00:00.000Z"
QUEUED_GROUP = "22222222-3333-4444-5555-666666666666"


@pytest.fixture
def station(tmp_path: Path, db_url: str, box: server.SandboxServer
            ) -> Iterator[tuple[Store, Worker, Path]]:
    """A watch folder with Tom's folder in it, its job table, and a worker against the sandbox."""
    (tmp_path / "w" / "Tom").mkdir(parents=True)
    cfg = config_mod.load(str(write_config(tmp_path / "config.toml", watch=tmp_path / "w",
                                           db=tmp_path / "unused.db", base_url=box.base_url)))
    store = Store.open(db_url)
    api = ApiClient(box.base_url, TOKEN, httpx.Timeout(5.0))
    uploader = Uploader(5.0)
    try:
        yield store, Worker(cfg, store, api, uploader), tmp_path / "w"
    finally:
        api.close()
        uploader.close()
        store.close()


def queued_as(store: Store, watch: Path, name: str, athlete: str) -> int:
    """A file of Tom's folder queued for `athlete`: what the intake writes with the link it
    read before the movie (mark_ready checks nothing more)."""
    movie = watch / "Tom" / name
    movie.write_bytes(b"\0" * 1000)
    st = movie.stat()
    now = time.time()
    seen = store.observe(str(movie), str(watch), st.st_size, st.st_mtime_ns, now)
    assert store.mark_ready(seen.job_id, Ready(
        size=st.st_size, mtime_ns=st.st_mtime_ns, athlete_id=athlete,
        session_group_id=QUEUED_GROUP, file_name=name, capture_time=TAKEN,
        camera_configuration='{"camera_setup_selection": "single.front_on"}',
        movement_attributes='{"activity": "golf", "movement": "full_swing"}'), now)
    return seen.job_id


def posted(box: server.SandboxServer, name: str) -> list[str]:
    return [r["athlete_id"] for r in box.state.records(box.state._log_reservations)
            if r["file_name"] == name]


def done(store: Store, job_id: int) -> Job:
    """The job once its `done` is written (the recorder writes it after the upload)."""
    def written() -> Job | None:
        job = store.get(job_id)
        return job if job is not None and job.state == JobState.DONE else None
    return wait_for(written, 10, what=f"job {job_id} done")


def unique(name: str) -> str:
    """The module's sandbox keeps every test's reservations: a name of this test's own."""
    return f"{uuid.uuid4().hex[:8]}-{name}"


def test_a_link_changed_during_the_intake_s_read_is_the_one_reserved_for(
        station: tuple[Store, Worker, Path], box: server.SandboxServer) -> None:
    store, worker, watch = station
    AthleteTable(store).put([directory.link("Tom", ANA)], "me", "here", time.time())
    name = unique("relinked.mov")
    job_id = queued_as(store, watch, name, TOM)  # the link read before the change
    job = store.claim(time.time())
    assert job is not None and job.id == job_id
    worker.pipeline.process(job)
    assert posted(box, name) == [ANA]
    after = done(store, job_id)
    assert after.athlete_id == ANA
    # The session group follows the athlete, as the intake would have made it for ANA.
    day = datetime.fromtimestamp(parse_iso(TAKEN)).date()
    assert after.session_group_id == layout.place(PurePath(f"Tom/{name}"), {"Tom": ANA},
                                                  day).session_group_id


def test_a_link_removed_during_the_intake_s_read_sends_it_back_to_wait_for_an_athlete(
        station: tuple[Store, Worker, Path], box: server.SandboxServer) -> None:
    store, worker, watch = station
    name = unique("unlinked.mov")
    job_id = queued_as(store, watch, name, TOM)  # Tom was unlinked meanwhile
    job = store.claim(time.time())
    assert job is not None
    worker.pipeline.process(job)
    assert posted(box, name) == []
    after = store.get(job_id)
    assert after is not None
    assert after.state == JobState.PENDING, after.last_error
    assert directory.hold_folder(after.last_error) == "Tom"  # the intake's own reason
    assert after.attempts == 0  # not counted against the file
    assert [f["folder"] for f in unknown_folders(store)] == ["Tom"]


def test_a_capture_that_exists_keeps_its_athlete(
        station: tuple[Store, Worker, Path], box: server.SandboxServer) -> None:
    store, worker, watch = station
    AthleteTable(store).put([directory.link("Tom", TOM)], "me", "here", time.time())
    name = unique("made.mov")
    job_id = queued_as(store, watch, name, TOM)
    job = store.claim(time.time())
    assert job is not None
    held = worker.pipeline.reserve(job)  # reserved ahead: the capture exists at Uplift
    assert held is not None
    changed = AthleteTable(store).put([directory.link("Tom", ANA)], "me", "here", time.time())
    assert [j for j, _ in changed.kept] == [job_id]
    worker.pipeline.upload_reserved(held)
    assert posted(box, name) == [TOM]
    assert done(store, job_id).athlete_id == TOM
