"""Attack on issue 31: a job the daemon left `uploading` before its closing boundary went out
(SIGKILL mid-body) is asked about after the restart like one whose answer was lost. When every
read of the capture fails (the API down for a while), it must ask less and less often, as a job
whose boundary went out does, not every two seconds with a warning each time for as long as
the outage lasts."""

from __future__ import annotations

import shutil
import signal
import time
from pathlib import Path

import sqlalchemy as sa
from support import (
    Proc,
    Sandbox,
    captures_config,
    jobs_by_name,
    make_movie,
    start_daemon,
    status,
    wait_for,
)

from daemon.jobs.engine import make_engine
from daemon.jobs.worker_writes import CHECKING
from daemon.timeutil import local_clock
from daemon.work.landed import ATTENTION_AFTER, SETTLE_SECONDS, UNANSWERED

DOWN_FOR = 600.0  # how long ago the killed upload started: the daemon was down that long


def test_a_job_killed_before_its_boundary_backs_off_while_reads_fail(
        tmp_path: Path, sandbox: Sandbox, procs: list[Proc]) -> None:
    captures, config = captures_config(tmp_path, sandbox.base_url, settle=0.3)
    # The body's first 64 KiB are read, then nothing for a minute: the daemon is mid-body.
    sandbox.faults(upload=[{"cut": True, "after": 65536, "hold": 60}])
    procs.append(first := start_daemon(tmp_path, config))
    shutil.copy(make_movie(tmp_path / "src.mov", frames=60), captures / "jane" / "swing.mov")
    engine = make_engine(f"sqlite:///{tmp_path / 'jobs.db'}", create=False)

    def row() -> sa.Row[tuple[str, float | None, float | None]] | None:
        with engine.connect() as conn:
            return conn.execute(sa.text(
                "SELECT state, boundary_sent_at, upload_started_at FROM jobs")).first()

    wait_for(lambda: (r := row()) is not None and r.state == "uploading", 60,
             what="the upload under way")
    first.signal(signal.SIGKILL)
    assert first.popen is not None and first.popen.wait(10) == -signal.SIGKILL
    left = row()
    assert left is not None and left.state == "uploading" and left.boundary_sent_at is None
    with engine.begin() as conn:  # it was killed DOWN_FOR ago; the daemon was down since
        conn.execute(sa.text("UPDATE jobs SET upload_started_at = :t"),
                     {"t": time.time() - DOWN_FOR})
    engine.dispose()
    sandbox.faults(capture_read=[{"status": 503}] * 50)
    procs.append(start_daemon(tmp_path, config, name="again.log"))
    wait_for(lambda: sandbox.state()["reads"], 30, what="the first read of the capture")
    job = wait_for(lambda: (j := jobs_by_name(config).get("swing.mov")) and
                   j["state"] == "queued" and j.get("reason") == CHECKING and j, 30,
                   what="the job waiting for Uplift's answer")
    time.sleep(8.0)  # a window in which no second read is due (none must come)
    reads = sandbox.state()["reads"]
    assert len(reads) == 1, (f"{len(reads)} reads of the capture in 8 s after an outage of "
                             f"{DOWN_FOR:.0f} s: {[r['at'] for r in reads]}", job)
    assert not sandbox.uploads_for("swing.mov")


def test_a_rejected_token_on_the_capture_read_is_attention_not_a_silent_wait(
        tmp_path: Path, sandbox: Sandbox, procs: list[Proc]) -> None:
    """The upload's answer is lost and every read of the capture is refused 401 (the token was
    revoked meanwhile): with no other job to reserve, nothing else ever hears the 401, so the
    check itself must pause uploads with the credentials ATTENTION, as a reservation's 401
    does, not wait 'checking with Uplift' for ever."""
    captures, config = captures_config(tmp_path, sandbox.base_url, settle=0.3)
    sandbox.faults(upload=[{"stored_then_drop": True}],
                   capture_read=[{"status": 401}] * 30)
    procs.append(daemon := start_daemon(tmp_path, config))
    shutil.copy(make_movie(tmp_path / "src.mov", frames=2), captures / "jane" / "swing.mov")
    wait_for(lambda: sandbox.state()["reads"], 30, what="the first read of the capture")
    notices = wait_for(lambda: status(config)["notices"], 20,
                       what="the credentials ATTENTION (only 'checking' was shown)")
    assert "credentials" in notices, notices
    assert daemon.has_event("api.credentials_rejected")
    job = jobs_by_name(config)["swing.mov"]
    assert job["state"] == "queued", job
    assert len(sandbox.uploads_for("swing.mov")) == 1


def _killed_after_the_boundary(tmp_path: Path, config: Path, captures: Path, sandbox: Sandbox,
                               procs: list[Proc], boundary_at: float) -> sa.Engine:
    """A daemon SIGKILLed after swing.mov's closing boundary went out and before any answer;
    its stored boundary then set to `boundary_at` (the daemon is stopped)."""
    procs.append(first := start_daemon(tmp_path, config))
    shutil.copy(make_movie(tmp_path / "src.mov", frames=2), captures / "jane" / "swing.mov")
    engine = make_engine(f"sqlite:///{tmp_path / 'jobs.db'}", create=False)

    def boundary() -> float | None:
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT boundary_sent_at FROM jobs")).scalar()

    wait_for(boundary, 60, what="the closing boundary sent")
    first.signal(signal.SIGKILL)
    assert first.popen is not None and first.popen.wait(10) == -signal.SIGKILL
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE jobs SET boundary_sent_at = :t"), {"t": boundary_at})
    return engine


def test_reads_that_keep_failing_are_an_attention_not_a_silent_wait(
        tmp_path: Path, sandbox: Sandbox, procs: list[Proc]) -> None:
    """The upload was stored, its answer lost, and every read since says nothing usable (a
    status Uplift's reference does not list, then 503s) for longer than ATTENTION_AFTER: the
    job still waits unsent, and `status` says so in plain words, for as long as it lasts."""
    captures, config = captures_config(tmp_path, sandbox.base_url, settle=0.3)
    sandbox.faults(answer_delay=[60])  # stored, then the answer waits: the daemon dies first
    began = time.time() - ATTENTION_AFTER - 300  # the boundary went out 20 minutes ago
    _killed_after_the_boundary(tmp_path, config, captures, sandbox, procs, began).dispose()
    sandbox.faults(capture_read=[{"capture": "archived"}] + [{"status": 503}] * 50)
    procs.append(daemon := start_daemon(tmp_path, config, name="again.log"))
    notices = wait_for(lambda: (n := status(config)["notices"]) and UNANSWERED in n and n, 30,
                       what="the ATTENTION (only 'checking with Uplift' was shown)")
    message = notices[UNANSWERED]["message"]
    assert "whether 1 upload arrived" in message and "not sent again" in message, message
    assert local_clock(began, time.time()) in message, message
    assert daemon.has_event("service.attention")
    reads = sandbox.state()["reads"]
    assert reads and reads[0]["answer"] == "archived", reads
    job = jobs_by_name(config)["swing.mov"]
    assert job["state"] == "queued" and job.get("reason") == CHECKING, job
    assert len(sandbox.uploads_for("swing.mov")) == 1  # the first one, never sent again


def test_a_boundary_stored_ahead_of_the_clock_waits_the_settle_time_from_now(
        tmp_path: Path, sandbox: Sandbox, procs: list[Proc]) -> None:
    """The clock was a day ahead when the boundary was written, and set right while the
    daemon was stopped; the body arrived but nothing was stored. Uplift says awaiting_upload:
    the file is sent again SETTLE_SECONDS after the first read, once, not a day later."""
    captures, config = captures_config(tmp_path, sandbox.base_url, settle=0.3)
    sandbox.faults(upload=[{"cut": True, "after": 1 << 40, "hold": 60}])  # never stored
    _killed_after_the_boundary(tmp_path, config, captures, sandbox, procs,
                               time.time() + 86400).dispose()
    procs.append(daemon := start_daemon(tmp_path, config, name="again.log"))
    wait_for(lambda: sandbox.uploads_for("swing.mov"), SETTLE_SECONDS + 45,
             what="the file sent again after the settle time (the boundary read a day ahead)")
    reads = sandbox.state()["reads"]
    uploads = sandbox.uploads_for("swing.mov")
    assert len(uploads) == 1, uploads
    assert reads and all(r["answer"] == "awaiting_upload" for r in reads), reads
    first = reads[0]["at"]
    assert first + SETTLE_SECONDS - 1 <= uploads[0]["at"] <= first + SETTLE_SECONDS + 20, \
        (reads, uploads)
    assert daemon.has_event("upload.boundary_ahead")
    wait_for(lambda: jobs_by_name(config)["swing.mov"]["state"] == "done", 20, what="done")
