"""POST /captures is made once per reservation: a TypeError while the answer is read (a bug, an
odd answer) must not make the pipeline ask again, which would create a second capture."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support import ATHLETE, TOKEN, write_config

from daemon import config as config_mod
from daemon.jobs.store import Ready, Store
from daemon.net import api as api_mod
from daemon.net.api import ApiClient
from daemon.net.upload import Uploader
from daemon.sandbox import server
from daemon.work.worker import Worker

GROUP = "22222222-3333-4444-5555-666666666666"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(f"sqlite:///{tmp_path / 'jobs.db'}")
    yield s
    s.close()


def test_a_type_error_reading_the_answer_does_not_post_again(
        box: server.SandboxServer, store: Store, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "w" / "jane").mkdir(parents=True)
    movie = tmp_path / "w" / "jane" / "once.mov"
    movie.write_bytes(b"\0" * 1000)
    st = movie.stat()
    cfg = config_mod.load(str(write_config(tmp_path / "config.toml", watch=tmp_path / "w",
                                           db=tmp_path / "jobs.db", base_url=box.base_url)))
    now = time.time()
    seen = store.observe(str(movie), str(tmp_path / "w"), st.st_size, st.st_mtime_ns, now)
    store.mark_ready(seen.job_id, Ready(
        size=st.st_size, mtime_ns=st.st_mtime_ns, athlete_id=ATHLETE, session_group_id=GROUP,
        file_name="once.mov", capture_time="2026-01-01T00:00:00.000Z",
        camera_configuration='{"camera_setup_selection": "single.front_on"}',
        movement_attributes='{"activity": "golf", "movement": "full_swing"}'), now)

    def broken(*args: object, **kwargs: object) -> None:
        raise TypeError("an answer we read wrongly")

    # After the POST went through: the capture exists on the server.
    monkeypatch.setattr(api_mod, "parse_reservation", broken)
    api = ApiClient(box.base_url, TOKEN, httpx.Timeout(5.0))
    uploader = Uploader(5.0)
    worker = Worker(cfg, store, api, uploader)
    try:
        job = store.claim(time.time())
        assert job is not None
        worker.pipeline.process(job)
    finally:
        api.close()
        uploader.close()
    posted = [r for r in box.state.records(box.state._log_reservations)
              if r["file_name"] == "once.mov"]
    assert len(posted) == 1, posted
    after = store.get(job.id)
    assert after.state == "queued" and "internal error (TypeError)" in (after.last_error or "")
