"""The hand-off between the reserve-ahead threads (which fill it) and the upload slots (which
take from it): jobs claimed and reserved ahead, oldest claim first, and how many to hold.

How many follows Little's law: reservations in flight = uploads per second (all slots) x
seconds per reservation, at least one per slot, up to `limit` (the reservers). Held ahead are
the jobs waiting here, the ones being reserved, and the ones upload threads took but that do
not send yet (`held_ahead`: waiting for a send turn).

It has its own lock; it wakes nobody. Whoever changes it in a way another thread waits for
then bumps the wake-ups (work/wakeups.py: the slot that took a job, the reserver that put
one), after reading the generation before looking here: no wake-up is lost."""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from daemon.jobs.models import Job

Item = tuple[Job, Any]  # a job and its reservation's token


class ReservedJobs:
    def __init__(self, concurrency: int, slots: int, limit: int, depth: int | None,
                 held_ahead: Callable[[], int], abort: threading.Event):
        self.concurrency = concurrency  # uploads sending at once: what reserve-ahead feeds
        self.slots = slots  # upload threads
        self.limit = limit  # reservers: at most this many held ahead
        self.depth = depth  # jobs held ahead (queued + being reserved); None: adaptive
        self.held_ahead = held_ahead  # taken by upload threads, not sending yet: ahead too
        self.abort = abort  # set: nothing is handed over (in-flight work gives up)
        self._cond = threading.Condition()
        self._ready: deque[Item] = deque()
        self._reserving = 0
        self._closed = False
        self._reserve_s: float | None = None  # smoothed seconds per reservation
        self._upload_s: float | None = None  # smoothed seconds a slot spends per reserved job

    # ---- the reservers' side ------------------------------------------------------------------

    def begin(self) -> bool:
        """Take room for one more reservation (two reservers never both fill the last);
        False when full or closed."""
        with self._cond:
            if self._closed:
                return False
            if len(self._ready) + self._reserving + self.held_ahead() >= self._target():
                return False
            self._reserving += 1
            return True

    def cancel(self) -> None:
        """The room taken by `begin` is not used (nothing claimed)."""
        with self._cond:
            self._reserving -= 1
            self._cond.notify_all()

    def put(self, job: Job | None, token: Any, took: float = 0.0) -> bool:
        """A reservation begun ended: `token` (None: the job ended there, or the reserver
        died) is handed to the slots. False when it was not taken in (closed, aborting): the
        caller gives it back to the queue."""
        with self._cond:
            self._reserving -= 1
            kept = False
            if token is not None:
                self._reserve_s = smooth(self._reserve_s, took)
                if job is not None and not self._closed and not self.abort.is_set():
                    self._ready.append((job, token))
                    kept = True
            self._cond.notify_all()
            return kept

    # ---- the slots' side ----------------------------------------------------------------------

    def take(self) -> Item | None:
        """The oldest job reserved ahead, or None."""
        with self._cond:
            if self._closed or not self._ready:
                return None
            return self._ready.popleft()

    def uploaded(self, took: float) -> None:
        """A slot spent `took` seconds on a reserved job (turn waits included)."""
        with self._cond:
            self._upload_s = smooth(self._upload_s, took)

    # ---- control ------------------------------------------------------------------------------

    def drain(self) -> list[Item]:
        """Everything waiting, to give back (a closed gate, `pause --now`)."""
        with self._cond:
            items = list(self._ready)
            self._ready.clear()
            return items

    def close(self) -> list[Item]:
        """Stopping: nothing more is taken in or out; what waits is returned, to give back."""
        with self._cond:
            self._closed = True
        return self.drain()

    def ready(self) -> int:
        with self._cond:
            return len(self._ready)

    def reserving(self) -> int:
        with self._cond:
            return self._reserving

    def wait_idle(self, deadline: float, clock: Callable[[], float],
                  force: Callable[[], bool]) -> bool:
        """Until no reservation is in flight, `deadline` or `force()`; True when none is."""
        with self._cond:
            while self._reserving and clock() < deadline and not force():
                self._cond.wait(min(0.2, max(0.0, deadline - clock())))
            return not self._reserving

    def _target(self) -> int:
        """Jobs to hold reserved ahead. Under the lock."""
        if self.depth is not None:
            return self.depth
        want = self.concurrency
        if self._reserve_s and self._upload_s:
            # Each upload thread finishes a job every `_upload_s` (turn waits included).
            want = max(want, math.ceil(self.slots * self._reserve_s / self._upload_s))
        return max(1, min(want, self.limit))


def smooth(old: float | None, new: float) -> float:
    return new if old is None else 0.8 * old + 0.2 * new
