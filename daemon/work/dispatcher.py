"""The upload threads (`threads`, two per slot: work/turns.py), each uploading one job at a
time, and `reservers` reserve-ahead threads (reserve_ahead.py) that keep jobs claimed and
reserved in a hand-off queue, so a slot goes from one upload straight to the next instead of
waiting on an API round trip (without reservers, a slot claims and reserves by itself). How
many are held ahead follows Little's law: one per slot, more when a reservation takes longer
than an upload (small files, a distant API), up to `reservers`.

One condition guards the wake-up generation, the timers and the hand-off queue, so a wake-up
that arrives while a thread is between "found nothing" and "going to sleep" is never lost.
Idle threads sleep until a wake-up or their next timer (monotonic): no polling here.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from sqlalchemy.exc import OperationalError

from daemon import logs
from daemon.jobs.models import Job
from daemon.work.reserve_ahead import DB_BACKOFF, Backoff, ReserveAhead, failed, smooth

log = logs.get("worker")


class Dispatcher(ReserveAhead):
    """`process(job)` reserves and uploads a claimed job. With `reserve`, reserve-ahead runs:
    `reserve(job)` returns a token (None: the job ended, its outcome written), `upload(token)`
    uploads it (re-reserving when the window got short), `release(token)` puts a job that
    will not be uploaded now back in the queue (attempt not counted)."""

    def __init__(self, concurrency: int, claim: Callable[[], Job | None],
                 process: Callable[[Job], None], orphan: Callable[[Job], None],
                 gate: Callable[[], float] = lambda: 0.0,
                 on_db_error: Callable[[Exception | None], None] = lambda e: None,
                 on_abort: Callable[[], None] = lambda: None,
                 clock: Callable[[], float] = time.monotonic, *,
                 reserve: Callable[[Job], Any] | None = None,
                 upload: Callable[[Any], None] | None = None,
                 release: Callable[[Any], None] | None = None,
                 reservers: int = 1, depth: int | None = None, threads: int | None = None,
                 held_ahead: Callable[[], int] = lambda: 0):
        self.concurrency = concurrency  # uploads sending at once: what reserve-ahead feeds
        threads = threads or concurrency
        self.held_ahead = held_ahead  # taken by upload threads, not sending yet: ahead too
        self.claim, self.process, self.orphan, self.gate = claim, process, orphan, gate
        self.on_db_error, self.on_abort, self.clock = on_db_error, on_abort, clock
        self.reserve, self.upload = reserve, upload
        self.release = release or (lambda token: None)
        self.reservers = reservers if reserve is not None and upload is not None else 0
        self.depth = depth  # jobs held ahead (queued + being reserved); None: adaptive
        self._reserve_s: float | None = None  # smoothed seconds per reservation
        self._upload_s: float | None = None  # smoothed seconds a slot spends per reserved job
        self.abort = threading.Event()  # set when in-flight uploads must give up (shutdown)
        self._cond = threading.Condition()
        self._gen = 0  # bumped by every wake-up
        # Bumped only by wake()/timers (new work may exist); `_empty` is the value at which a
        # claim last found nothing, so hand-offs do not send every idle thread to claim.
        self._work = 0
        self._empty = -1
        self._timers: list[float] = []
        self._stopping = False
        self._threads: list[threading.Thread | None] = [None] * threads
        self._current: list[Job | None] = [None] * threads
        self._busy = 0
        self._ready: deque[tuple[Job, Any]] = deque()  # reserved ahead, oldest claim first
        self._rthreads: list[threading.Thread | None] = [None] * self.reservers
        self._ahead: list[Job | None] = [None] * self.reservers  # being reserved, per thread
        self._reserving = 0

    # ---- control (any thread) --------------------------------------------------------------

    def start(self) -> None:
        for slot in range(len(self._threads)):
            self._spawn(slot)
        for n in range(self.reservers):
            self._spawn_reserver(n)

    def _spawn(self, slot: int) -> None:
        thread = threading.Thread(target=self._run, args=(slot,), name=f"upload-{slot}",
                                  daemon=True)
        self._threads[slot] = thread
        thread.start()

    def _spawn_reserver(self, n: int) -> None:
        thread = threading.Thread(target=self._run_reserver, args=(n,), name=f"reserve-{n}",
                                  daemon=True)
        self._rthreads[n] = thread
        thread.start()

    def wake(self) -> None:
        with self._cond:
            self._gen += 1
            self._work += 1
            self._cond.notify_all()

    def wake_in(self, seconds: float) -> None:
        with self._cond:
            heapq.heappush(self._timers, self.clock() + max(0.0, seconds))
            self._cond.notify_all()

    def held_changed(self) -> None:
        """Fewer jobs are held ahead by upload threads: reserve-ahead looks for room again."""
        with self._cond:
            self._gen += 1
            self._cond.notify_all()

    def stopping(self) -> bool:
        with self._cond:
            return self._stopping

    def busy(self) -> int:
        with self._cond:
            return self._busy

    def ready(self) -> int:
        """Jobs reserved ahead, waiting for a slot."""
        with self._cond:
            return len(self._ready)

    def check(self) -> None:
        """Supervision: a thread that died is logged, its job requeued, and restarted."""
        for slot, thread in enumerate(self._threads):
            if thread is None or thread.is_alive() or self._stopping:
                continue
            job = self._current[slot]
            log.error("worker.slot_died", slot=slot, job_id=job.id if job else None)
            if job is not None:
                self._orphan(job)
                self._release(slot)
            self._spawn(slot)
        for n, thread in enumerate(self._rthreads):
            if thread is None or thread.is_alive() or self._stopping:
                continue
            job = self._ahead[n]
            log.error("worker.reserver_died", reserver=n, job_id=job.id if job else None)
            if job is not None:
                self._orphan(job)
                self._reserved(n, None, None)
            self._spawn_reserver(n)

    def stop(self, timeout: float, force: Callable[[], bool] = lambda: False) -> None:
        """Take no new work; let in-flight uploads finish within `timeout`, then abort them by
        closing their connections (they go back to the queue). Jobs reserved ahead go back
        to the queue at once."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._return_ready()
        deadline = self.clock() + timeout
        if self._wait_idle(deadline, force):
            return
        # Closing the connections ends a send blocked on a stalled link at once; the jobs go
        # back to the queue (a second SIGTERM lands here too, without waiting).
        self.abort.set()
        self.on_abort()
        self._wait_idle(self.clock() + 5.0, lambda: False)

    def interrupt(self, timeout: float = 10.0) -> None:
        """An operator's `pause --now`: uploads in flight and jobs reserved ahead go back to
        the queue; the threads stay (the gate keeps them from claiming while paused)."""
        self._return_ready()
        with self._cond:
            if not self._busy and not self._reserving:
                return
        self.abort.set()
        self.on_abort()
        self._wait_idle(self.clock() + timeout, lambda: False)
        self.abort.clear()

    def _wait_idle(self, deadline: float, force: Callable[[], bool]) -> bool:
        with self._cond:
            while (self._busy or self._reserving) and self.clock() < deadline and not force():
                self._cond.wait(min(0.2, max(0.0, deadline - self.clock())))
            return not (self._busy or self._reserving)

    # ---- the slots -------------------------------------------------------------------------

    def _run(self, slot: int) -> None:
        backoff = Backoff()
        item: tuple[Job, Any] | None = None  # handed over as the previous upload ended
        while True:
            if item is None:
                with self._cond:
                    if self._stopping:
                        return
                    gen = self._gen
                wait = self.gate()
                if wait > 0:
                    self._gated(gen, wait)
                    continue
                item = self._take(slot)
            if item is None and self.reservers:
                # The reservers claim (as many round trips in flight as slots, at least, as
                # before); a slot's own claim would add API load the moment it is held.
                self._sleep(gen, None)
                continue
            if item is None:
                claimed = self._claim_or_sleep(gen, backoff)
                if claimed is None:
                    continue
                item = (claimed, None)
                with self._cond:
                    self._busy += 1
                    self._current[slot] = claimed
            job, token = item
            started = self.clock()
            try:
                if token is None:
                    self.process(job)
                else:
                    assert self.upload is not None
                    self.upload(token)
            except Exception as exc:  # the job table failed under it, or a bug: never lose it
                failed(job.id, exc)
                self._orphan(job)
            # Not in a `finally`: a thread that dies keeps its job here for check() to requeue.
            # A reserved job that waits is taken in the same step, so the slot's connection
            # idles as briefly as possible between two uploads.
            took = self.clock() - started if token is not None else None
            item = self._release(slot, took, take=token is not None and self._open())

    def _open(self) -> bool:
        """The gate is open. Never raises: the slot still holds its finished job here."""
        try:
            return self.gate() <= 0
        except Exception:
            log.exception("worker.gate_failed")
            return False

    def _gated(self, gen: int, wait: float) -> None:
        self._return_ready()
        self._sleep(gen, wait)
        with self._cond:
            self._work += 1  # the gate may be open now: worth a claim

    def _claim_or_sleep(self, gen: int, backoff: Backoff) -> Job | None:
        """The next job; or None after sleeping until there may be one."""
        job, pause = self._try_claim(backoff)
        if job is None:
            self._sleep(gen, pause)
        return job

    def _try_claim(self, backoff: Backoff) -> tuple[Job | None, float | None]:
        """(the next job, None), or (None, how long to sleep): until woken (no work), or a
        growing delay when the job table could not be used."""
        work = self._claimable()
        if work is None:
            return None, None
        try:
            job = self._claim(work)
        except OperationalError as exc:
            self.on_db_error(exc)
            return None, backoff.failed()
        backoff.reset()
        return job, None

    def _claimable(self) -> int | None:
        """The work generation to claim at; None when a claim already found nothing since."""
        with self._cond:
            return None if self._empty == self._work else self._work

    def _claim(self, work: int) -> Job | None:
        job = self.claim()
        if job is None:
            with self._cond:
                self._empty = max(self._empty, work)
        return job

    def _take(self, slot: int) -> tuple[Job, Any] | None:
        """The oldest job reserved ahead, now this slot's; under the condition."""
        with self._cond:
            return self._take_locked(slot)

    def _take_locked(self, slot: int) -> tuple[Job, Any] | None:
        if self._stopping or not self._ready:
            return None
        item = self._ready.popleft()
        self._busy += 1
        self._current[slot] = item[0]
        self._gen += 1  # room in the hand-off queue: a reserver may claim the next
        self._cond.notify_all()
        return item

    def _release(self, slot: int, took: float | None = None,
                 take: bool = False) -> tuple[Job, Any] | None:
        """The slot's job ended; with `take`, the next reserved job is taken at once."""
        with self._cond:
            self._busy -= 1
            self._current[slot] = None
            self._work += 1  # its outcome may have put a job back in the queue
            if took is not None:
                self._upload_s = smooth(self._upload_s, took)
            self._cond.notify_all()
            return self._take_locked(slot) if take else None

    # ---- shared ----------------------------------------------------------------------------

    def _orphan(self, job: Job) -> None:
        delay = DB_BACKOFF[0]
        while True:
            try:
                self.orphan(job)
                return
            except OperationalError as exc:
                self.on_db_error(exc)
                if self.abort.wait(delay):
                    return  # recovered at the next start
                delay = min(DB_BACKOFF[1], delay * 2)
            except Exception:
                log.exception("worker.requeue_failed", job_id=job.id)
                return

    def _sleep(self, gen: int, timeout: float | None) -> None:
        """Until a wake-up newer than `gen`, a due timer, `timeout`, or stop."""
        end = None if timeout is None else self.clock() + timeout
        with self._cond:
            while not self._stopping and self._gen == gen:
                now = self.clock()
                if self._timers and self._timers[0] <= now:
                    while self._timers and self._timers[0] <= now:
                        heapq.heappop(self._timers)
                    self._gen += 1
                    self._work += 1
                    self._cond.notify_all()
                    return
                if end is not None and now >= end:
                    return
                limits = [t - now for t in (self._timers[:1] + ([end] if end else []))]
                self._cond.wait(min(limits) if limits else None)
