"""The upload slots: `concurrency` threads owned here, each claiming and processing one job at a
time. One condition guards the wake-up generation and the timers, so a wake-up that arrives
while a slot is between "claimed nothing" and "going to sleep" is never lost. Idle slots sleep
until a wake-up or their next timer (monotonic): no polling here.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable

from sqlalchemy.exc import OperationalError

from daemon import logs
from daemon.jobs.models import Job

log = logs.get("worker")
DB_BACKOFF = (1.0, 30.0)


class Dispatcher:
    def __init__(self, concurrency: int, claim: Callable[[], Job | None],
                 process: Callable[[Job], None], orphan: Callable[[Job], None],
                 gate: Callable[[], float] = lambda: 0.0,
                 on_db_error: Callable[[Exception | None], None] = lambda e: None,
                 on_abort: Callable[[], None] = lambda: None,
                 clock: Callable[[], float] = time.monotonic):
        self.concurrency = concurrency
        self.claim, self.process, self.orphan, self.gate = claim, process, orphan, gate
        self.on_db_error, self.on_abort, self.clock = on_db_error, on_abort, clock
        self.abort = threading.Event()  # set when in-flight uploads must give up (shutdown)
        self._cond = threading.Condition()
        self._gen = 0  # bumped by every wake-up
        self._timers: list[float] = []
        self._stopping = False
        self._threads: list[threading.Thread | None] = [None] * concurrency
        self._current: list[Job | None] = [None] * concurrency
        self._busy = 0

    # ---- control (any thread) --------------------------------------------------------------

    def start(self) -> None:
        for slot in range(self.concurrency):
            self._spawn(slot)

    def _spawn(self, slot: int) -> None:
        thread = threading.Thread(target=self._run, args=(slot,), name=f"upload-{slot}",
                                  daemon=True)
        self._threads[slot] = thread
        thread.start()

    def wake(self) -> None:
        with self._cond:
            self._gen += 1
            self._cond.notify_all()

    def wake_in(self, seconds: float) -> None:
        with self._cond:
            heapq.heappush(self._timers, self.clock() + max(0.0, seconds))
            self._cond.notify_all()

    def busy(self) -> int:
        with self._cond:
            return self._busy

    def check(self) -> None:
        """Supervision: a slot whose thread died is logged, its job requeued, and restarted."""
        for slot, thread in enumerate(self._threads):
            if thread is None or thread.is_alive() or self._stopping:
                continue
            job = self._current[slot]
            log.error("worker.slot_died", slot=slot, job_id=job.id if job else None)
            if job is not None:
                self._orphan(job)
                self._release(slot)
            self._spawn(slot)

    def stop(self, timeout: float, force: Callable[[], bool] = lambda: False) -> None:
        """Take no new work; let in-flight uploads finish within `timeout`, then abort them by
        closing their connections (they go back to the queue)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        deadline = self.clock() + timeout
        if self._wait_idle(deadline, force):
            return
        # Closing the connections ends a send blocked on a stalled link at once; the jobs go
        # back to the queue (a second SIGTERM lands here too, without waiting).
        self.abort.set()
        self.on_abort()
        self._wait_idle(self.clock() + 5.0, lambda: False)

    def _wait_idle(self, deadline: float, force: Callable[[], bool]) -> bool:
        with self._cond:
            while self._busy and self.clock() < deadline and not force():
                self._cond.wait(min(0.2, max(0.0, deadline - self.clock())))
            return not self._busy

    # ---- the slots -------------------------------------------------------------------------

    def _run(self, slot: int) -> None:
        db_delay = 0.0
        while True:
            with self._cond:
                if self._stopping:
                    return
                gen = self._gen
            wait = self.gate()
            if wait > 0:
                self._sleep(gen, wait)
                continue
            try:
                job = self.claim()
                db_delay = 0.0
            except OperationalError as exc:
                self.on_db_error(exc)
                db_delay = min(DB_BACKOFF[1], max(DB_BACKOFF[0], db_delay * 2))
                self._sleep(gen, db_delay)
                continue
            if job is None:
                self._sleep(gen, None)
                continue
            with self._cond:
                self._busy += 1
                self._current[slot] = job
            try:
                self.process(job)
            except Exception:  # the job table failed under it, or a bug: never lose the job
                log.exception("worker.crashed", job_id=job.id)
                self._orphan(job)
            # Not in a `finally`: a thread that dies keeps its job here for check() to requeue.
            self._release(slot)

    def _release(self, slot: int) -> None:
        with self._cond:
            self._busy -= 1
            self._current[slot] = None
            self._cond.notify_all()

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
                    self._cond.notify_all()
                    return
                if end is not None and now >= end:
                    return
                limits = [t - now for t in (self._timers[:1] + ([end] if end else []))]
                self._cond.wait(min(limits) if limits else None)
