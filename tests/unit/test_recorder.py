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


def test_an_idle_lane_keeps_no_thread_and_loses_no_call_at_the_edge() -> None:
    """The thread starts with the first call and ends when idle; calls submitted from several
    threads while it keeps ending (idle_exit ~0) all run, each submitter's in order."""
    lane = Lane("t", idle_exit=0.0005)
    assert not lane.running() and threading.active_count() >= 1
    ran: dict[int, list[int]] = {n: [] for n in range(4)}

    def submitter(n: int) -> None:
        for i in range(300):
            lane.submit(ran[n].append, i)
            if i % 7 == 0:
                time.sleep(0.001)  # let the lane go idle and end its thread

    threads = [threading.Thread(target=submitter, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert lane.drain(time.monotonic() + 10)
    assert all(ran[n] == list(range(300)) for n in ran)
    deadline = time.monotonic() + 5
    while lane.running() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not lane.running()
    lane.submit(ran[0].append, 300)
    assert lane.drain(time.monotonic() + 5) and ran[0][-1] == 300
    lane.stop()


def test_a_call_submitted_as_the_idle_thread_ends_still_runs() -> None:
    """The race itself, made to happen: a call arrives after the thread's wait timed out and
    before it decides to end. It must run (on that thread, or a new one)."""
    import queue

    lane = Lane("t", idle_exit=0.01)
    ran: list[str] = []
    real = lane._queue

    class Racing:
        raced = False

        def put(self, item: object) -> None:
            real.put(item)

        def empty(self) -> bool:
            return real.empty()

        def get(self, timeout: float | None = None) -> object:
            try:
                return real.get(timeout=timeout)
            except queue.Empty:
                if not Racing.raced:
                    Racing.raced = True
                    lane.submit(ran.append, "raced")
                raise

    lane._queue = Racing()  # type: ignore[assignment]
    lane.submit(ran.append, "first")
    assert lane.drain(time.monotonic() + 5)
    deadline = time.monotonic() + 5
    while "raced" not in ran and time.monotonic() < deadline:
        time.sleep(0.01)
    assert Racing.raced and ran == ["first", "raced"]
    lane.stop()


def test_a_thread_that_cannot_start_leaves_the_lane_usable(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """No thread to be had (a task limit): the call is refused as by a stopped lane (the
    caller runs it itself), and the next call gets a thread and runs."""
    real_start = threading.Thread.start
    fail = [True]

    def start(self: threading.Thread) -> None:
        if self.name == "t" and fail:
            fail.pop()
            raise RuntimeError("can't start new thread")
        real_start(self)

    monkeypatch.setattr(threading.Thread, "start", start)
    lane = Lane("t")
    ran: list[int] = []
    with pytest.raises(RuntimeError):
        lane.submit(ran.append, 1)
    assert lane.submit(ran.append, 2).result(timeout=5) is None and ran == [2]
    assert lane.drain(time.monotonic() + 5)
    lane.stop()
