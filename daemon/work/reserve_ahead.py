"""The dispatcher's reserve-ahead threads (`Dispatcher` in dispatcher.py is the other half:
the upload threads, wake-ups and timers, which these share under its one condition). Each
claims a job and reserves it while the upload threads are busy, into the hand-off queue, so an
upload thread goes from one upload straight to the next instead of waiting on an API round
trip."""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from sqlalchemy.exc import DBAPIError, OperationalError

from daemon import logs
from daemon.jobs.models import Job

log = logs.get("worker")
DB_BACKOFF = (1.0, 30.0)


class ReserveAhead:
    """Mixed into Dispatcher, whose __init__ sets these."""

    _cond: threading.Condition
    _ready: deque[tuple[Job, Any]]
    _reserving: int
    _ahead: list[Job | None]
    _stopping: bool
    _gen: int
    _work: int
    _threads: list[threading.Thread | None]
    _reserve_s: float | None
    _upload_s: float | None
    concurrency: int
    reservers: int
    depth: int | None
    abort: threading.Event
    reserve: Callable[[Job], Any] | None
    release: Callable[[Any], None]
    held_ahead: Callable[[], int]
    clock: Callable[[], float]
    gate: Callable[[], float]
    _gated: Callable[[int, float], None]
    _sleep: Callable[[int, float | None], None]
    _try_claim: Callable[[Backoff], tuple[Job | None, float | None]]
    _orphan: Callable[[Job], None]

    def _target(self) -> int:
        """Jobs to hold reserved ahead: reservations in flight = uploads per second (all
        slots) x seconds per reservation, at least one per slot. Under the condition."""
        if self.depth is not None:
            return self.depth
        want = self.concurrency
        if self._reserve_s and self._upload_s:
            # Each upload thread finishes a job every `_upload_s` (turn waits included).
            want = max(want, math.ceil(len(self._threads) * self._reserve_s / self._upload_s))
        return max(1, min(want, self.reservers))

    def _run_reserver(self, n: int) -> None:
        backoff = Backoff()
        while True:
            with self._cond:  # take the room first: two reservers never both fill it
                if self._stopping:
                    return
                gen = self._gen
                room = len(self._ready) + self._reserving + self.held_ahead() < self._target()
                if room:
                    self._reserving += 1
            if not room:  # full: until a slot takes one; a closing gate gives them back
                wait = self.gate()
                if wait > 0:
                    self._gated(gen, wait)
                else:
                    self._sleep(gen, None)
                continue
            # The gate after the room: a reservation that just failed (and paused the API)
            # is seen here, not raced past.
            wait = self.gate()
            job, pause = (None, None) if wait > 0 else self._try_claim(backoff)
            if job is None:
                with self._cond:
                    self._reserving -= 1
                    self._cond.notify_all()
                if wait > 0:  # paused, outside upload hours, API backing off: nothing ahead
                    self._gated(gen, wait)
                else:
                    self._sleep(gen, pause)
                continue
            with self._cond:
                self._ahead[n] = job
            started = self.clock()
            try:
                assert self.reserve is not None
                token = self.reserve(job)
            except Exception as exc:  # as in a slot: the job table failed under it, or a bug
                failed(job.id, exc)
                self._orphan(job)
                token = None
            # Not in a `finally`: a thread that dies keeps its job for check() to requeue.
            self._reserved(n, job, token, self.clock() - started)

    def _reserved(self, n: int, job: Job | None, token: Any, took: float = 0.0) -> None:
        """Hand a reserved job to the slots, or back to the queue when stopping/aborting."""
        back = False
        with self._cond:
            self._reserving -= 1
            self._ahead[n] = None
            if token is not None:
                self._reserve_s = smooth(self._reserve_s, took)
            else:
                self._work += 1  # its outcome may have put it back in the queue
            if job is not None and token is not None:
                if self._stopping or self.abort.is_set():
                    back = True
                else:
                    self._ready.append((job, token))
            self._gen += 1  # a slot may take it; waiters re-check
            self._cond.notify_all()
        if back and job is not None:
            self._give_back(job, token)

    def _return_ready(self) -> None:
        with self._cond:
            if not self._ready:
                return
            items = list(self._ready)
            self._ready.clear()
        for job, token in items:
            self._give_back(job, token)

    def _give_back(self, job: Job, token: Any) -> None:
        try:
            self.release(token)
        except Exception:  # the job table, most likely: requeue it the careful way
            log.exception("worker.requeue_failed", job_id=job.id)
            self._orphan(job)
        with self._cond:
            self._work += 1  # claimable again


def failed(job_id: int, exc: Exception) -> None:
    """A job's step failed: the job table away is a warning (the job is requeued once it is
    back, nothing is lost); anything else is a bug, logged with its traceback."""
    if isinstance(exc, OperationalError) or (isinstance(exc, DBAPIError)
                                             and exc.connection_invalidated):
        log.warning("worker.db_unavailable", job_id=job_id,
                    reason=str(getattr(exc, "orig", exc))[:200])
    else:
        log.exception("worker.crashed", job_id=job_id)


def smooth(old: float | None, new: float) -> float:
    return new if old is None else 0.8 * old + 0.2 * new


class Backoff:
    """A claim's delay after the job table failed: doubling, capped; reset by a success."""

    def __init__(self) -> None:
        self.delay = 0.0

    def failed(self) -> float:
        self.delay = min(DB_BACKOFF[1], max(DB_BACKOFF[0], self.delay * 2))
        return self.delay

    def reset(self) -> None:
        self.delay = 0.0
