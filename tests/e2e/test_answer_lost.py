"""Issue 31: an upload whose answer is lost is never sent again before Uplift has said whether
it arrived (GET /v1/captures/{session_id}). The sandbox stores the object and drops the
connection, answers reads with errors for a while, a daemon is SIGKILLed between the body and
the answer, or the body arrives and nothing is stored: each file is stored once."""

from __future__ import annotations

import shutil
import signal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from fleet_support import node_config
from pgserver import PgServer
from support import (
    Proc,
    Sandbox,
    captures_config,
    jobs_by_name,
    make_movie,
    start_daemon,
    wait_for,
)

from daemon.jobs.engine import make_engine
from daemon.jobs.worker_writes import CHECKING
from daemon.work.landed import LOST_ANSWER, SETTLE_SECONDS

NEVER_STORED = {"cut": True, "after": 1 << 40}  # the whole body read, then dropped: not stored


def drop_movie(tmp_path: Path, folder: Path, name: str = "swing.mov") -> Path:
    shutil.copy(make_movie(tmp_path / f"src-{name}", frames=2), folder / name)
    return folder / name


def done(config: Path, name: str = "swing.mov") -> dict[str, Any] | None:
    job = jobs_by_name(config).get(name)
    return job if job is not None and job["state"] == "done" else None


def reads(box: Sandbox) -> list[dict[str, Any]]:
    return list(box.state()["reads"])


def test_stored_then_dropped_is_done_once(tmp_path: Path, sandbox: Sandbox,
                                          procs: list[Proc]) -> None:
    captures, config = captures_config(tmp_path, sandbox.base_url, settle=0.3)
    sandbox.faults(upload=[{"stored_then_drop": True}])
    procs.append(daemon := start_daemon(tmp_path, config))
    drop_movie(tmp_path, captures / "jane")
    job = wait_for(lambda: done(config), 60, what="the job done")
    assert len(sandbox.uploads_for("swing.mov")) == 1
    assert job["last_error"] == LOST_ANSWER
    assert len(sandbox.reservations_for("swing.mov")) == 1
    assert asked_until_landed(sandbox) == ["processing"]
    assert daemon.has_event("upload.answer_lost") and daemon.has_event("upload.done")


def test_reads_that_fail_make_the_job_wait_with_the_reason_then_done_once(
        tmp_path: Path, sandbox: Sandbox, procs: list[Proc]) -> None:
    captures, config = captures_config(tmp_path, sandbox.base_url, settle=0.3)
    sandbox.faults(upload=[{"stored_then_drop": True}],
                   capture_read=[{"status": 503}, {"status": 429, "retry_after": 3},
                                 {"status": 500}])  # (a 401 pauses uploads: its own test)
    procs.append(start_daemon(tmp_path, config))
    drop_movie(tmp_path, captures / "jane")
    waiting = wait_for(lambda: (j := jobs_by_name(config).get("swing.mov")) and
                       j["state"] == "queued" and j.get("reason") == CHECKING and j, 30,
                       what="the job waiting for Uplift's answer")
    assert len(sandbox.uploads_for("swing.mov")) == 1, waiting
    job = wait_for(lambda: done(config), 90, what="the job done")
    assert job["last_error"] == LOST_ANSWER
    assert asked_until_landed(sandbox) == [503, 429, 500, "processing"]
    assert len(sandbox.uploads_for("swing.mov")) == 1
    assert len(sandbox.reservations_for("swing.mov")) == 1


def test_sigkill_between_body_and_answer_is_done_once_after_restart(
        tmp_path: Path, sandbox: Sandbox, procs: list[Proc]) -> None:
    captures, config = captures_config(tmp_path, sandbox.base_url, settle=0.3)
    sandbox.faults(answer_delay=[60])  # stored, then the answer waits: the daemon dies first
    procs.append(first := start_daemon(tmp_path, config))
    drop_movie(tmp_path, captures / "jane")
    wait_for(lambda: sandbox.uploads_for("swing.mov"), 60, what="the object stored")
    first.signal(signal.SIGKILL)
    assert first.popen is not None and first.popen.wait(10) == -signal.SIGKILL
    procs.append(start_daemon(tmp_path, config, name="again.log"))
    job = wait_for(lambda: done(config), 60, what="the job done after the restart")
    assert len(sandbox.uploads_for("swing.mov")) == 1
    assert job["last_error"] == LOST_ANSWER
    assert len(sandbox.reservations_for("swing.mov")) == 1


def _sent_once_after_awaiting(box: Sandbox, boundary: float) -> None:
    """Stored once, and only after a read said `awaiting_upload` SETTLE_SECONDS after the
    first upload's boundary."""
    uploads = box.uploads_for("swing.mov")
    assert len(uploads) == 1, uploads
    answers = reads(box)
    assert answers and all(r["answer"] == "awaiting_upload" for r in answers), answers
    believed = [r for r in answers if r["at"] >= boundary + SETTLE_SECONDS]
    assert believed and believed[0]["at"] <= uploads[0]["at"], (answers, uploads, boundary)


def test_upload_that_never_landed_is_sent_again_once_uplift_says_awaiting_upload(
        tmp_path: Path, sandbox: Sandbox, procs: list[Proc]) -> None:
    captures, config = captures_config(tmp_path, sandbox.base_url, settle=0.3)
    sandbox.faults(upload=[NEVER_STORED])
    procs.append(start_daemon(tmp_path, config))
    drop_movie(tmp_path, captures / "jane")
    engine = make_engine(f"sqlite:///{tmp_path / 'jobs.db'}", create=False)
    boundary = wait_for(lambda: _boundary(engine), 60, what="the first boundary sent")
    job = wait_for(lambda: done(config), 90, what="the job done")
    assert job["last_error"] is None  # a real upload's answer, this time
    _sent_once_after_awaiting(sandbox, boundary)
    assert len(sandbox.reservations_for("swing.mov")) == 1  # its window held: the same one


def _boundary(engine: sa.Engine) -> float | None:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT boundary_sent_at FROM jobs")).scalar()


def test_fleet_takeover_asks_before_sending_again(tmp_path: Path, own_pg: PgServer) -> None:
    box = Sandbox(tmp_path / "sandbox").start()
    procs: list[Proc] = []
    try:
        db_url = own_pg.create_db("fleet")
        nas = tmp_path / "nas"
        (nas / "jane").mkdir(parents=True)
        configs = [node_config(tmp_path, name, nas, db_url, box.base_url, upload="")
                   for name in ("station-1", "station-2")]
        # The body arrives, nothing is stored, no answer while station-1 lives.
        box.faults(upload=[{**NEVER_STORED, "hold": 60}])
        procs.append(first := start_daemon(tmp_path, configs[0], name="station-1.log"))
        drop_movie(tmp_path, nas / "jane")
        engine = make_engine(db_url, create=False)
        boundary = wait_for(lambda: _boundary(engine), 60, what="the boundary sent")
        first.signal(signal.SIGKILL)
        assert first.popen is not None and first.popen.wait(10) == -signal.SIGKILL
        procs.append(second := start_daemon(tmp_path, configs[1], name="station-2.log"))
        job = wait_for(lambda: done(configs[1]), 120, what="the job done by station-2")
        assert job["node"] == "station-2"
        assert second.has_event("fleet.takeover")
        _sent_once_after_awaiting(box, boundary)
        engine.dispose()
    finally:
        for p in procs:
            p.kill()
        box.stop()


def asked_until_landed(sandbox: Sandbox) -> list[Any]:
    """The check's reads, up to the first that found the capture (later ones are the analysis
    follow-up's; the sandbox says `completed` once its few seconds of processing are over)."""
    answers = [r["answer"] for r in reads(sandbox)]
    first = next((i for i, a in enumerate(answers) if isinstance(a, str)
                  and a != "awaiting_upload"), len(answers) - 1)
    return [("processing" if a == "completed" else a) for a in answers[:first + 1]]
