"""The upload slots on their own: no lost wake-ups, timers on the monotonic clock, supervision,
and an abort that reaches uploads stuck past the shutdown timeout."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace
from typing import Any

import pytest

from daemon.work.dispatcher import Dispatcher
from tests.support import wait_for


class Queue:
    """A job source: claim() hands out what was put in."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.items: list[Any] = []
        self.claims = 0

    def put(self, job_id: int) -> None:
        with self.lock:
            self.items.append(SimpleNamespace(id=job_id))

    def claim(self) -> Any:
        with self.lock:
            self.claims += 1
            return self.items.pop(0) if self.items else None


def queue_300_waking_each(q: Queue, d: Dispatcher) -> None:
    """Queue-then-wake from another thread, as the intake does, 300 times."""
    for i in range(300):
        q.put(i)
        d.wake()


def assert_idle_does_not_poll(q: Queue, d: Dispatcher) -> None:
    """Started with nothing to do, `d` claims once, then sleeps until woken: no more claims."""
    d.start()
    try:
        wait_for(lambda: q.claims >= 1, 5)
        before = q.claims
        time.sleep(0.5)
        assert q.claims == before  # asleep until woken
    finally:
        d.stop(1)


def test_every_wake_up_is_seen_even_when_it_races_a_slot_going_idle() -> None:
    q, done = Queue(), []
    d = Dispatcher(2, q.claim, lambda job: done.append(job.id), lambda job: None)
    d.start()
    try:
        queue_300_waking_each(q, d)
        wait_for(lambda: len(done) == 300, 10, what="every job processed")
    finally:
        d.stop(1)


def test_idle_slots_do_not_poll() -> None:
    q = Queue()
    assert_idle_does_not_poll(q, Dispatcher(2, q.claim, lambda job: None, lambda job: None))


def test_a_timer_wakes_the_slots() -> None:
    q, done = Queue(), []
    d = Dispatcher(1, q.claim, lambda job: done.append(job.id), lambda job: None)
    d.start()
    try:
        wait_for(lambda: q.claims >= 1, 5)
        q.put(7)  # due later: no wake(), only a timer
        d.wake_in(0.2)
        wait_for(lambda: done == [7], 5, what="the timer's wake-up")
    finally:
        d.stop(1)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_slot_whose_thread_died_is_restarted_and_its_job_requeued() -> None:
    q, orphans, done = Queue(), [], []

    def process(job: Any) -> None:
        if job.id == 1:
            raise SystemExit  # not an Exception: ends the thread
        done.append(job.id)

    d = Dispatcher(1, q.claim, process, orphans.append)
    d.start()
    try:
        q.put(1)
        d.wake()
        wait_for(lambda: not d.slots._threads[0].is_alive(), 5)
        d.check()
        assert [j.id for j in orphans] == [1]
        q.put(2)
        d.wake()
        wait_for(lambda: done == [2], 5, what="the restarted slot")
    finally:
        d.stop(1)


def test_stop_aborts_what_does_not_finish_in_time() -> None:
    q, aborted = Queue(), []
    d: Dispatcher

    def process(job: Any) -> None:
        d.abort.wait(30)  # a stalled upload that only gives up when its socket is closed

    d = Dispatcher(1, q.claim, process, lambda job: None, on_abort=lambda: aborted.append(1))
    d.start()
    q.put(1)
    d.wake()
    wait_for(lambda: d.busy() == 1, 5)
    started = time.monotonic()
    d.stop(0.5)
    assert aborted == [1] and d.busy() == 0
    assert time.monotonic() - started < 3


def test_gate_holds_claims_until_it_opens() -> None:
    q, done = Queue(), []
    opened = threading.Event()
    d = Dispatcher(1, q.claim, lambda job: done.append(job.id), lambda job: None,
                   gate=lambda: 0.0 if opened.is_set() else 0.1)
    d.start()
    try:
        q.put(1)
        d.wake()
        time.sleep(0.3)
        assert done == [] and q.claims == 0
        opened.set()
        wait_for(lambda: done == [1], 5)
    finally:
        d.stop(1)


# ---- reserve-ahead ---------------------------------------------------------------------------


class Lane:
    """Fake reserve/upload/release for reserve-ahead: records (what, job id) in order."""

    def __init__(self, reserve_s: float = 0.0, upload_s: float = 0.0) -> None:
        self.reserve_s, self.upload_s = reserve_s, upload_s
        self.lock = threading.Lock()
        self.log: list[tuple[str, int]] = []
        self.released: list[int] = []

    def note(self, what: str, job_id: int) -> None:
        with self.lock:
            self.log.append((what, job_id))

    def reserve(self, job: Any) -> Any:
        time.sleep(self.reserve_s)  # an API round trip
        self.note("reserved", job.id)
        return job

    def upload(self, token: Any) -> None:
        self.note("upload", token.id)
        time.sleep(self.upload_s)
        self.note("done", token.id)

    def process(self, job: Any) -> None:  # a slot's own claim: reserve, then upload
        self.upload(self.reserve(job))

    def release(self, token: Any) -> None:
        with self.lock:
            self.released.append(token.id)

    def dispatcher(self, q: Queue, concurrency: int, **kw: Any) -> Dispatcher:
        return Dispatcher(concurrency, q.claim, self.process, lambda job: None,
                          reserve=self.reserve, upload=self.upload, release=self.release, **kw)

    def uploads(self) -> list[int]:
        return [i for what, i in self.log if what == "done"]


def test_a_slot_never_waits_on_a_reservation_when_one_is_ready() -> None:
    q, lane = Queue(), Lane(reserve_s=0.1, upload_s=0.5)
    for i in range(1, 5):
        q.put(i)
    d = lane.dispatcher(q, 1, reservers=1)
    d.start()
    try:
        wait_for(lambda: len(lane.uploads()) == 4, 15, what="four uploads")
    finally:
        d.stop(1)
    log = lane.log
    assert lane.uploads() == [1, 2, 3, 4]
    for prev, nxt in zip(range(1, 4), range(2, 5), strict=True):
        # The next job was reserved while the one before it was still uploading.
        assert log.index(("reserved", nxt)) < log.index(("done", prev)) < \
            log.index(("upload", nxt)), log


def test_every_job_is_uploaded_once_with_reserve_ahead() -> None:
    q, lane = Queue(), Lane()
    d = lane.dispatcher(q, 2, reservers=2)
    d.start()
    try:
        queue_300_waking_each(q, d)
        wait_for(lambda: len(lane.uploads()) == 300, 10, what="every job uploaded")
        assert sorted(lane.uploads()) == list(range(300)) and lane.released == []
    finally:
        d.stop(1)


def test_idle_reservers_do_not_poll() -> None:
    q, lane = Queue(), Lane()
    assert_idle_does_not_poll(q, lane.dispatcher(q, 2, reservers=2))


def test_jobs_reserved_ahead_go_back_on_stop() -> None:
    q, lane = Queue(), Lane()
    d = lane.dispatcher(q, 0, reservers=1, depth=2)  # no slots: what is reserved stays ahead
    d.start()
    for i in (1, 2, 3):
        q.put(i)
    d.wake()
    wait_for(lambda: d.ready() == 2, 5, what="two jobs reserved ahead")
    d.stop(1)
    assert sorted(lane.released) == [1, 2] and lane.uploads() == []
    assert q.items[0].id == 3  # the third was never claimed


def test_a_closed_gate_returns_jobs_reserved_ahead() -> None:
    q, lane = Queue(), Lane()
    opened = threading.Event()
    opened.set()
    d = lane.dispatcher(q, 0, reservers=1, gate=lambda: 0.0 if opened.is_set() else 30.0)
    d.start()
    try:
        q.put(1)
        d.wake()
        wait_for(lambda: d.ready() == 1, 5, what="a job reserved ahead")
        opened.clear()  # e.g. `pause`, or outside upload hours
        d.wake()
        wait_for(lambda: lane.released == [1], 5, what="the job given back")
        assert d.ready() == 0
    finally:
        d.stop(1)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_reserver_whose_thread_died_is_restarted_and_its_job_requeued() -> None:
    q, lane, orphans = Queue(), Lane(), []

    def reserve(job: Any) -> Any:
        if job.id == 1:
            raise SystemExit  # not an Exception: ends the thread
        return lane.reserve(job)

    d = Dispatcher(0, q.claim, lane.process, orphans.append, reserve=reserve,
                   upload=lane.upload, release=lane.release, reservers=1)
    d.start()
    try:
        q.put(1)
        d.wake()
        wait_for(lambda: not d.reserver._threads[0].is_alive(), 5)
        d.check()
        assert [j.id for j in orphans] == [1]
        q.put(2)
        d.wake()
        wait_for(lambda: d.ready() == 1, 5, what="the restarted reserver")
    finally:
        d.stop(1)
    assert lane.released == [2]


def test_a_service_wide_pause_runs_on_the_monotonic_clock() -> None:
    from daemon.work.reservations import Reservations

    mono, wall = [100.0], [1_800_000_000.0]
    res = Reservations(120.0, clock=lambda: mono[0], wall=lambda: wall[0])
    res.pause(30.0, "API backing off")
    wall[0] -= 3600  # NTP steps the wall clock back an hour
    mono[0] += 31.0
    assert res.paused_for() == 0.0  # over after 30 s, whatever the wall clock did


def test_the_hand_off_counts_what_is_held_ahead_and_refuses_after_close() -> None:
    from daemon.work.handoff import ReservedJobs

    held, abort = [1], threading.Event()
    r = ReservedJobs(1, 2, 4, depth=3, held_ahead=lambda: held[0], abort=abort)
    job = SimpleNamespace(id=1)
    assert r.begin() and r.begin()
    assert not r.begin()  # 2 being reserved + 1 waiting for a send turn = depth
    assert r.put(job, "token-1") and r.ready() == 1  # type: ignore[arg-type]
    assert not r.begin()  # still 3 held ahead: 1 ready, 1 reserving, 1 waiting for a turn
    held[0] = 0
    assert r.begin()
    assert r.take() == (job, "token-1") and r.take() is None
    abort.set()
    assert not r.put(job, "token-2")  # type: ignore[arg-type]  # aborting: the caller gives it back
    abort.clear()
    assert r.put(job, "token-3") and r.reserving() == 0  # type: ignore[arg-type]
    assert r.close() == [(job, "token-3")]
    assert not r.begin() and r.take() is None
