"""The dispatcher's wake-ups, shared by the upload slots (slots.py) and the reserve-ahead
threads (reserve_ahead.py): one condition for the wake-up generation, the claim generation,
the timers and stopping, so a wake-up that arrives while a thread is between "found nothing"
and "going to sleep" is never lost. Idle threads sleep until a wake-up or their next timer
(monotonic): no polling.

A thread reads the generation (`generation()`) before it looks for work; whoever makes work
or room afterwards bumps it (`wake`, `nudge`), so the thread's `sleep(gen)` returns at once."""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable


class Wakeups:
    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self._cond = threading.Condition()
        self._gen = 0  # bumped by every wake-up
        # Bumped only when new work may exist; `_empty` is the value at which a claim last
        # found nothing, so hand-offs do not send every idle thread to claim.
        self._work = 0
        self._empty = -1
        self._timers: list[float] = []
        self._stopping = False

    def wake(self) -> None:
        """New work may exist: every sleeper looks again, and a claim is worth making."""
        self.nudge(work=True)

    def wake_in(self, seconds: float) -> None:
        with self._cond:
            heapq.heappush(self._timers, self.clock() + max(0.0, seconds))
            self._cond.notify_all()

    def nudge(self, work: bool = False) -> None:
        """Something a sleeper waits for changed (a job handed over, room ahead); with `work`,
        a job may also be claimable again."""
        with self._cond:
            self._gen += 1
            if work:
                self._work += 1
            self._cond.notify_all()

    def more_work(self) -> None:
        """A job may be claimable again (an outcome requeued it): the next claim is made, but
        nobody is woken for it."""
        with self._cond:
            self._work += 1

    def generation(self) -> int | None:
        """The wake-up generation to sleep on; None once stopping."""
        with self._cond:
            return None if self._stopping else self._gen

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()

    def stopping(self) -> bool:
        with self._cond:
            return self._stopping

    def claimable(self) -> int | None:
        """The work generation to claim at; None when a claim already found nothing since."""
        with self._cond:
            return None if self._empty == self._work else self._work

    def found_nothing(self, work: int) -> None:
        """A claim made at `work` found nothing: no other is made until new work may exist."""
        with self._cond:
            self._empty = max(self._empty, work)

    def sleep(self, gen: int, timeout: float | None) -> None:
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
