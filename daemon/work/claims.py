"""The job queue as the dispatcher's threads see it (upload slots and reserve-ahead alike):
claim the next job, put one back that a thread could not finish, give back jobs reserved ahead
that will not be uploaded now. The job table failing under any of these is backed off from,
never a reason to lose a job."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy.exc import DBAPIError, OperationalError

from daemon import logs
from daemon.jobs.models import Job
from daemon.work.handoff import ReservedJobs
from daemon.work.wakeups import Wakeups

log = logs.get("worker")
DB_BACKOFF = (1.0, 30.0)


class Claims:
    """`claim()` the next job (None: none); `orphan(job)` requeues a job a thread lost;
    `release(token)` puts a job reserved ahead back (attempt not counted)."""

    def __init__(self, wakeups: Wakeups, reserved: ReservedJobs,
                 claim: Callable[[], Job | None], orphan: Callable[[Job], None],
                 release: Callable[[Any], None], on_db_error: Callable[[Exception | None], None],
                 abort: threading.Event):
        self.wakeups, self.reserved = wakeups, reserved
        self._claim, self._orphan, self._release = claim, orphan, release
        self.on_db_error, self.abort = on_db_error, abort

    def claim(self, backoff: Backoff) -> tuple[Job | None, float | None]:
        """(the next job, None), or (None, how long to sleep): until woken (no work), or a
        growing delay when the job table could not be used."""
        work = self.wakeups.claimable()
        if work is None:
            return None, None
        try:
            job = self._claim()
        except OperationalError as exc:
            self.on_db_error(exc)
            return None, backoff.failed()
        backoff.reset()
        if job is None:
            self.wakeups.found_nothing(work)
        return job, None

    def orphan(self, job: Job) -> None:
        """Requeue a job its thread could not finish; retried while the job table is away."""
        delay = DB_BACKOFF[0]
        while True:
            try:
                self._orphan(job)
                return
            except OperationalError as exc:
                self.on_db_error(exc)
                if self.abort.wait(delay):
                    return  # recovered at the next start
                delay = min(DB_BACKOFF[1], delay * 2)
            except Exception:
                log.exception("worker.requeue_failed", job_id=job.id)
                return

    def give_back(self, job: Job, token: Any) -> None:
        try:
            self._release(token)
        except Exception:  # the job table, most likely: requeue it the careful way
            log.exception("worker.requeue_failed", job_id=job.id)
            self.orphan(job)
        self.wakeups.more_work()  # claimable again

    def return_ready(self, items: list[tuple[Job, Any]] | None = None) -> None:
        """Jobs reserved ahead (all waiting, by default) go back to the queue."""
        for job, token in self.reserved.drain() if items is None else items:
            self.give_back(job, token)

    def gated(self, gen: int, wait: float) -> None:
        """The gate is closed (paused, outside upload hours, the API backing off): nothing is
        held ahead meanwhile; sleep until it may open."""
        self.return_ready()
        self.wakeups.sleep(gen, wait)
        self.wakeups.more_work()  # the gate may be open now: worth a claim


def failed(job_id: int, exc: Exception) -> None:
    """A job's step failed: the job table away is a warning (the job is requeued once it is
    back, nothing is lost); anything else is a bug, logged with its traceback."""
    if isinstance(exc, OperationalError) or (isinstance(exc, DBAPIError)
                                             and exc.connection_invalidated):
        log.warning("worker.db_unavailable", job_id=job_id,
                    reason=str(getattr(exc, "orig", exc))[:200])
    else:
        log.exception("worker.crashed", job_id=job_id)


class Backoff:
    """A claim's delay after the job table failed: doubling, capped; reset by a success."""

    def __init__(self) -> None:
        self.delay = 0.0

    def failed(self) -> float:
        self.delay = min(DB_BACKOFF[1], max(DB_BACKOFF[0], self.delay * 2))
        return self.delay

    def reset(self) -> None:
        self.delay = 0.0
