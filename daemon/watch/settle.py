"""The settle queue: keys due at monotonic times, checked one at a time by one thread.

The queue owns its thread and its heap (behind one condition). It knows nothing of files: the
intake schedules keys and gets them back when due. With nothing due it sleeps until something
is scheduled, so an idle daemon does not wake up here.

A check that never returns (a read on a hung network share or device) would stop settling for
every file. The service's health tick asks `stuck()`; `replace()` then leaves that thread behind
(Python cannot stop a thread blocked in the kernel) and starts a fresh one. The stuck key is
not handed out again while its thread is still inside it.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable
from typing import Protocol

from daemon import logs

log = logs.get("settle")
STUCK_AFTER = 60.0  # seconds one check may take before the thread counts as stuck


class SettleQueue:
    def __init__(self, check: Callable[[str], None],
                 clock: Callable[[], float] = time.monotonic):
        self._check, self.clock = check, clock
        self._cond = threading.Condition()
        self._due: list[tuple[float, str]] = []
        self._stop = False
        self._thread: threading.Thread | None = None
        self._gen = 0  # a thread whose generation is not the current one ends its loop
        self._busy: tuple[str, float] | None = None  # the current thread's key, since when
        self._stranded: dict[str, threading.Thread] = {}  # left behind inside these keys

    def start(self) -> None:
        with self._cond:
            self._stop = False
            self._gen += 1
            self._busy = None
            self._thread = threading.Thread(target=self._loop, args=(self._gen,),
                                            name="settle", daemon=True)
            self._thread.start()

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stuck(self, limit: float = STUCK_AFTER) -> tuple[str, float] | None:
        """The key the thread has been checking for `limit` seconds or more, and how long."""
        with self._cond:
            busy = self._busy
        if busy is None:
            return None
        took = self.clock() - busy[1]
        return (busy[0], took) if took >= limit else None

    def replace(self) -> None:
        """Leave the current (stuck) thread inside its check and settle on a fresh one."""
        with self._cond:
            if self._busy is not None and self._thread is not None:
                self._stranded[self._busy[0]] = self._thread
        self.start()

    def stranded(self) -> list[str]:
        """Keys that threads left behind are still inside."""
        with self._cond:
            self._stranded = {k: t for k, t in self._stranded.items() if t.is_alive()}
            return list(self._stranded)

    def schedule(self, key: str, delay: float = 0.0) -> None:
        with self._cond:
            heapq.heappush(self._due, (self.clock() + delay, key))
            self._cond.notify()

    def stop(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _next(self, gen: int) -> str | None:
        with self._cond:
            while True:
                while not self._stop and self._gen == gen and \
                        (not self._due or self._due[0][0] > self.clock()):
                    timeout = self._due[0][0] - self.clock() if self._due else None
                    self._cond.wait(timeout)
                if self._stop or self._gen != gen:
                    return None
                key = heapq.heappop(self._due)[1]
                left = self._stranded.get(key)
                if left is not None and left.is_alive():
                    # Its old thread is still inside it: look again later, not alongside.
                    heapq.heappush(self._due, (self.clock() + STUCK_AFTER, key))
                    continue
                self._stranded.pop(key, None)
                self._busy = (key, self.clock())
                return key

    def _loop(self, gen: int) -> None:
        while (key := self._next(gen)) is not None:
            try:
                self._check(key)
            except Exception:  # one bad file must not end settling for all
                log.exception("watch.settle_error", path=key)
            finally:
                with self._cond:
                    if self._gen == gen:
                        self._busy = None


MAX_STRANDED = 3  # threads left stuck at once before the process exits for systemd


class _Attention(Protocol):
    def condition(self, name: str, message: str | None) -> None: ...


def supervise(queue: SettleQueue, attention: _Attention, limit: float = STUCK_AFTER,
              most: int = MAX_STRANDED) -> str | None:
    """The health tick's part: a settle thread stuck for `limit` seconds is logged, shown as
    ATTENTION and replaced; the file it is stuck in waits (pending) until its read returns.
    Returns a reason to exit non-zero when `most` threads are stuck at once."""
    stuck = queue.stuck(limit)
    if stuck is not None:
        path, took = stuck
        log.error("watch.settle_stuck", path=path, seconds=round(took))
        queue.replace()
    stranded = queue.stranded()
    if len(stranded) > most:
        return (f"{len(stranded)} settle threads are stuck reading files "
                f"({', '.join(stranded)}); restarting")
    attention.condition("settle", None if not stranded else
                        f"reading {', '.join(stranded)} has not finished in over "
                        f"{limit:.0f} s (a hung network share or device?); other files go on")
    return None
