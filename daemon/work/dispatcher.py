"""The dispatcher: creates and supervises two runnables, the upload slots (slots.py: `threads`
threads, two per send turn, each uploading one job at a time) and the reserve-ahead threads
(reserve_ahead.py: `reservers` threads keeping jobs claimed and reserved ahead), and starts,
stops and interrupts them. Each owns its loop and its threads; they meet only at

- the hand-off (handoff.py, `ReservedJobs`): reservers put reserved jobs in, slots take them
  out; it says how many to hold ahead (Little's law);
- the wake-ups (wakeups.py, `Wakeups`): one condition for wake-ups, timers and stopping, which
  every thread sleeps on;
- the queue (claims.py, `Claims`): claiming, requeueing and giving back jobs.

Without reservers, a slot claims and reserves by itself."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from daemon.jobs.models import Job
from daemon.work.claims import Claims
from daemon.work.handoff import ReservedJobs
from daemon.work.reserve_ahead import Reserver
from daemon.work.slots import Slots
from daemon.work.stuck import Stuck
from daemon.work.wakeups import Wakeups


class Dispatcher:
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
                 held_ahead: Callable[[], int] = lambda: 0,
                 wakeups: Wakeups | None = None, abort: threading.Event | None = None,
                 stuck: Stuck | None = None):
        threads = threads or concurrency
        reservers = reservers if reserve is not None and upload is not None else 0
        self.on_abort, self.clock = on_abort, clock
        self.abort = abort or threading.Event()  # set when in-flight uploads must give up
        self.wakeups = wakeups or Wakeups(clock)
        self.reserved = ReservedJobs(concurrency, threads, reservers, depth, held_ahead,
                                     self.abort)
        self.claims = Claims(self.wakeups, self.reserved, claim, orphan,
                             release or (lambda token: None), on_db_error, self.abort)
        self.slots = Slots(threads, self.wakeups, self.reserved, self.claims, process, upload,
                           gate, reservers > 0, clock, stuck)
        self.reserver = Reserver(reservers, self.wakeups, self.reserved, self.claims,
                                 reserve or (lambda job: None), gate, clock, stuck)

    # ---- control (any thread) --------------------------------------------------------------

    def start(self) -> None:
        self.slots.start()
        self.reserver.start()

    def check(self) -> None:
        """Supervision: a thread that died is logged, its job requeued, and restarted; an
        upload slot stuck on a file that stopped answering is let go (`stuck`: stuck.py)."""
        self.slots.check()
        self.reserver.check()

    def wake(self) -> None:
        self.wakeups.wake()

    def wake_in(self, seconds: float) -> None:
        self.wakeups.wake_in(seconds)

    def stopping(self) -> bool:
        return self.wakeups.stopping()

    def busy(self) -> int:
        return self.slots.busy()

    def ready(self) -> int:
        """Jobs reserved ahead, waiting for a slot."""
        return self.reserved.ready()

    def stop(self, timeout: float, force: Callable[[], bool] = lambda: False) -> None:
        """Take no new work; let in-flight uploads finish within `timeout`, then abort them by
        closing their connections (they go back to the queue). Jobs reserved ahead go back
        to the queue at once."""
        self.wakeups.stop()
        self.claims.return_ready(self.reserved.close())
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
        self.claims.return_ready()
        if not self.slots.busy() and not self.reserved.reserving():
            return
        self.abort.set()
        self.on_abort()
        self._wait_idle(self.clock() + timeout, lambda: False)
        self.abort.clear()

    def _wait_idle(self, deadline: float, force: Callable[[], bool]) -> bool:
        # The slots once more after the reservers: a job handed over meanwhile is seen.
        return (self.slots.wait_idle(deadline, force)
                and self.reserver.wait_idle(deadline, force)
                and self.slots.wait_idle(deadline, force))
