"""A capture is made for its folder's link as the reservation is made (issue 28, item 3b),
through the daemon and the sandbox as real processes: a folder re-linked or unlinked while a
claimed job's capture request is out and fails (an API 5xx), or while the daemon is down with
the job in flight, is what its next reservation goes by; with no link the job goes back to
waiting for an athlete, never failed; `status --json` shows a queued job's folder's link as it
stands, null when there is none."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from support import (
    Proc,
    Sandbox,
    captures_config,
    cli,
    job_state,
    jobs_by_name,
    logged,
    make_movie,
    start_daemon,
    status,
    wait_for,
)

from daemon.jobs.directory import hold_folder

TOM = "0b6f0c52-1d0e-4c3a-9a5e-2f1f4b7d9e01"
ANA = "7c2e9a10-55aa-4f0e-8d3b-6a1c0e9b2f44"
LATENCY = 8.0  # the capture request is out this long: time to change the link meanwhile
# After the 5xx the job waits this long, queued, for its next reservation: time to look.
FAILING = {"status": 503, "retry_after": 8}


def athletes(config: Path, *args: str) -> None:
    out = cli("athletes", *args, "--config", str(config))
    assert out.returncode == 0, out.stderr


def reserved_for(box: Sandbox, name: str) -> list[str]:
    return [r["athlete_id"] for r in box.reservations_for(name)]


def uploaded_for(box: Sandbox, name: str) -> list[str]:
    """The athletes of the captures the file's bytes were sent to."""
    sent = {u["session_id"] for u in box.uploads_for(name)}
    return [r["athlete_id"] for r in box.reservations_for(name) if r["session_id"] in sent]


def in_state(config: Path, name: str, state: str) -> dict[str, Any] | None:
    job = jobs_by_name(config).get(name)
    return job if job is not None and job["state"] == state else None


def out_for_tom(tmp_path: Path, box: Sandbox, name: str) -> tuple[Path, Proc]:
    """Tom's folder linked to TOM and a file of it whose capture request is out (slow, and
    about to fail with a 503): returns (config, the daemon)."""
    captures, config = captures_config(tmp_path, box.base_url, athlete="Tom", settle=0.3)
    athletes(config, "add", "Tom", TOM)
    box.faults(latency=LATENCY, reserve=[FAILING])
    daemon = start_daemon(tmp_path, config)
    shutil.copy(make_movie(tmp_path / "src.mov", frames=3), captures / "Tom" / name)
    wait_for(lambda: job_state(config, name) == "reserved", 20,
             what="its capture request to go out")
    return config, daemon


def test_a_relink_while_the_capture_request_fails_is_what_the_next_one_goes_by(
        tmp_path: Path, sandbox: Sandbox, procs: list[Proc]) -> None:
    config, daemon = out_for_tom(tmp_path, sandbox, "a.mov")
    procs.append(daemon)
    athletes(config, "add", "Tom", ANA)  # while the request is out
    sandbox.faults(latency=0)
    queued = wait_for(lambda: in_state(config, "a.mov", "queued"), 20,
                      what="the 503 to send it back to the queue")
    assert queued["athlete_id"] == ANA  # no reservation held: its folder's link as it stands
    wait_for(lambda: job_state(config, "a.mov") == "done", 30, what="a.mov done")
    assert uploaded_for(sandbox, "a.mov") == reserved_for(sandbox, "a.mov") == [ANA]
    assert jobs_by_name(config)["a.mov"]["athlete_id"] == ANA
    assert daemon.stop() == 0


def test_an_unlink_while_the_capture_request_fails_sends_it_back_to_wait_for_an_athlete(
        tmp_path: Path, sandbox: Sandbox, procs: list[Proc]) -> None:
    config, daemon = out_for_tom(tmp_path, sandbox, "b.mov")
    procs.append(daemon)
    athletes(config, "remove", "Tom")  # while the request is out
    sandbox.faults(latency=0)
    queued = wait_for(lambda: in_state(config, "b.mov", "queued"), 20,
                      what="the 503 to send it back to the queue")
    assert queued["athlete_id"] is None  # its folder has no link now
    pending = wait_for(lambda: in_state(config, "b.mov", "pending"), 30,
                       what="its next reservation to find no athlete")
    assert hold_folder(pending["last_error"]) == "Tom"  # the intake's reason, word for word
    assert [(f["folder"], f["files"]) for f in status(config)["unknown_folders"]] == \
        [("Tom", 1)]
    assert reserved_for(sandbox, "b.mov") == []
    assert not logged(daemon, "job.failed", "b.mov")
    # Linked again: it goes, with that link.
    athletes(config, "add", "Tom", ANA)
    wait_for(lambda: job_state(config, "b.mov") == "done", 30, what="b.mov done")
    assert uploaded_for(sandbox, "b.mov") == reserved_for(sandbox, "b.mov") == [ANA]
    assert daemon.stop() == 0


def test_a_relink_while_the_daemon_is_down_is_what_the_recovered_job_goes_by(
        tmp_path: Path, sandbox: Sandbox, procs: list[Proc]) -> None:
    config, daemon = out_for_tom(tmp_path, sandbox, "c.mov")
    procs.append(daemon)
    daemon.kill()  # with the request out: recovered at the next start
    sandbox.faults(latency=0)
    athletes(config, "add", "Tom", ANA)
    daemon = start_daemon(tmp_path, config, name="daemon2.log")
    procs.append(daemon)
    wait_for(lambda: job_state(config, "c.mov") == "done", 40, what="c.mov done")
    # (The dead daemon's request may still make a capture, for TOM: the sandbox answers it
    # late. Nothing is sent to it.)
    assert uploaded_for(sandbox, "c.mov") == [ANA]
    assert jobs_by_name(config)["c.mov"]["athlete_id"] == ANA
    assert daemon.stop() == 0
