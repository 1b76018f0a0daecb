"""The reserve-ahead threads: each claims a job and reserves it while the upload slots are
busy, into the hand-off (handoff.py), so an upload slot (slots.py) goes from one upload
straight to the next instead of waiting on an API round trip. This runnable owns its threads,
their loop and the job each is reserving; it meets the slots only at the hand-off and the
wake-ups (wakeups.py)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from daemon import logs
from daemon.jobs.models import Job
from daemon.work.claims import Backoff, Claims, failed
from daemon.work.handoff import ReservedJobs
from daemon.work.stuck import Stale, Stuck
from daemon.work.wakeups import Wakeups

log = logs.get("worker")


class Reserver:
    """`count` threads; `reserve(job)` returns a token for the slots (None: the job ended
    there, its outcome written)."""

    def __init__(self, count: int, wakeups: Wakeups, reserved: ReservedJobs, claims: Claims,
                 reserve: Callable[[Job], Any], gate: Callable[[], float],
                 clock: Callable[[], float], stuck: Stuck | None = None):
        self.wakeups, self.reserved, self.claims = wakeups, reserved, claims
        self.reserve, self.gate, self.clock = reserve, gate, clock
        self._lock = threading.Lock()
        self._threads: list[threading.Thread | None] = [None] * count
        self._ahead: list[Job | None] = [None] * count  # being reserved, per thread
        self.stale = Stale(stuck, clock) if stuck is not None else None

    def start(self) -> None:
        for n in range(len(self._threads)):
            self._spawn(n)

    def check(self) -> None:
        """Supervision: a thread that died is logged, its job requeued, and restarted; one
        stuck on its job's file (a hung share: stuck.py) is let go and replaced."""
        for n, thread in enumerate(self._threads):
            if thread is None or thread.is_alive() or self.wakeups.stopping():
                continue
            with self._lock:
                job = self._ahead[n]
            log.error("worker.reserver_died", reserver=n, job_id=job.id if job else None)
            if job is not None:
                self.claims.orphan(job)
                self._reserved(n, None, None, by_thread=False)
            self._spawn(n)
        if self.stale is not None and not self.stale.quiet() and not self.wakeups.stopping():
            with self._lock:
                held = list(zip(self._threads, self._ahead, strict=True))
            for n in self.stale.look(held):
                self._let_go(self.stale, n, *held[n])

    def _let_go(self, stale: Stale, n: int, thread: threading.Thread | None,
                job: Job | None) -> None:
        """As Slots._let_go: a new thread in its place first, then its job let go."""
        with self._lock:
            if thread is None or job is None or self._threads[n] is not thread or \
                    self._ahead[n] is not job:
                return  # it moved on meanwhile: not stuck
            fresh = self._new_thread(n)
        self._reserved(n, None, None, by_thread=False)  # its room ahead is free again
        stale.let_go(thread, job, f"reserve-{n}")
        fresh.start()
        log.info("worker.reserver_replaced", reserver=n, thread=fresh.name, stale=len(stale))

    def wait_idle(self, deadline: float, force: Callable[[], bool]) -> bool:
        return self.reserved.wait_idle(deadline, self.clock, force)

    def _spawn(self, n: int) -> None:
        with self._lock:
            thread = self._new_thread(n)
        thread.start()

    def _new_thread(self, n: int) -> threading.Thread:
        thread = threading.Thread(target=self._run, args=(n,), name=f"reserve-{n}",
                                  daemon=True)
        self._threads[n] = thread
        return thread

    def _run(self, n: int) -> None:
        backoff = Backoff()
        while True:
            gen = self.wakeups.generation()  # before the room is looked at: no lost wake-up
            if gen is None:
                return
            if not self.reserved.begin():  # full: until a slot takes one; a closing gate
                wait = self.gate()         # gives them back
                if wait > 0:
                    self.claims.gated(gen, wait)
                else:
                    self.wakeups.sleep(gen, None)
                continue
            # The gate after the room: a reservation that just failed (and paused the API)
            # is seen here, not raced past.
            wait = self.gate()
            job, pause = (None, None) if wait > 0 else self.claims.claim(backoff)
            if job is None:
                self.reserved.cancel()
                if wait > 0:  # paused, outside upload hours, API backing off: nothing ahead
                    self.claims.gated(gen, wait)
                else:
                    self.wakeups.sleep(gen, pause)
                continue
            with self._lock:
                self._ahead[n] = job
            started = self.clock()
            try:
                token = self.reserve(job)
            except Exception as exc:  # as in a slot: the job table failed under it, or a bug
                failed(job.id, exc)
                self.claims.orphan(job)
                token = None
            # Not in a `finally`: a thread that dies keeps its job for check() to requeue.
            if not self._reserved(n, job, token, self.clock() - started):
                log.info("worker.stale_thread_returned", job_id=job.id, reserver=n)
                return  # let go while stuck (stuck.py): its job is another claim's now

    def _reserved(self, n: int, job: Job | None, token: Any, took: float = 0.0,
                  by_thread: bool = True) -> bool:
        """Hand a reserved job to the slots, or back to the queue when stopping/aborting.
        False (nothing done) when the calling thread is no longer this place's."""
        with self._lock:
            if by_thread and self._threads[n] is not threading.current_thread():
                return False
            self._ahead[n] = None
        kept = self.reserved.put(job, token, took)
        # A slot may take it; waiters re-check. No token: its outcome may have requeued it.
        self.wakeups.nudge(work=token is None)
        if token is not None and not kept and job is not None:
            self.claims.give_back(job, token)
        return True
