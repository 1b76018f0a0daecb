"""The recorder's lanes run the slots' writes on their own thread, in the order they were handed
over; a failure of a write nobody waits for is logged and the lane goes on; stopping ends `done`
retries and never waits forever for a write that hangs."""

from __future__ import annotations

import threading
import time

import pytest
import structlog

from daemon.work.recorder import Lane, Recorder


def test_a_lane_runs_its_calls_in_order_on_one_thread() -> None:
    lane = Lane("test-lane")
    ran: list[tuple[int, str]] = []
    try:
        futures = [lane.submit(lambda n: ran.append((n, threading.current_thread().name)), n)
                   for n in range(50)]
        assert lane.drain(time.monotonic() + 10)
        assert all(f.done() for f in futures)
    finally:
        lane.stop()
    assert [n for n, _ in ran] == list(range(50))
    assert {name for _, name in ran} == {"test-lane"}
    with pytest.raises(RuntimeError):
        lane.submit(ran.append, 99)  # stopped: the caller does it itself


def test_a_failed_write_is_logged_and_the_next_still_runs() -> None:
    rec = Recorder()
    ran: list[str] = []

    def broken() -> None:
        raise RuntimeError("disk on fire")

    with structlog.testing.capture_logs() as logs:
        rec.logged(rec.finishes.submit(broken), "done", job_id=7)
        later = rec.finishes.submit(ran.append, "next")
        assert rec.stop(time.monotonic() + 10)
    assert later.result() is None and ran == ["next"]
    failed = [e for e in logs if e["event"] == "worker.record_failed"]
    assert len(failed) == 1 and failed[0]["job_id"] == 7 and failed[0]["reason"] == "disk on fire"


def test_stop_ends_done_retries_at_the_deadline() -> None:
    rec = Recorder()
    retry = rec.finishes.submit(rec.stopping.wait, 60.0)  # a `done` retry's backoff
    started = time.monotonic()
    assert rec.stop(time.monotonic() + 0.2)  # it gave up when told: nothing left running
    assert retry.result() is True and time.monotonic() - started < 5


def test_stop_does_not_wait_forever_for_a_write_that_hangs() -> None:
    rec = Recorder()
    hung = threading.Event()
    rec.starts.submit(hung.wait)  # a job table that never answers
    started = time.monotonic()
    try:
        assert not rec.stop(time.monotonic() + 0.2)
        assert time.monotonic() - started < 5
    finally:
        hung.set()
