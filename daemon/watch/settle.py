"""The settle queue: keys due at monotonic times, checked one at a time by one thread.

The queue owns its thread and its heap (behind one condition). It knows nothing of files: the
intake schedules keys and gets them back when due. With nothing due it sleeps until something
is scheduled, so an idle daemon does not wake up here.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable

from daemon import logs

log = logs.get("settle")


class SettleQueue:
    def __init__(self, check: Callable[[str], None],
                 clock: Callable[[], float] = time.monotonic):
        self._check, self.clock = check, clock
        self._cond = threading.Condition()
        self._due: list[tuple[float, str]] = []
        self._stop = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        with self._cond:
            self._stop = False
            self._thread = threading.Thread(target=self._loop, name="settle", daemon=True)
            self._thread.start()

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

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

    def _next(self) -> str | None:
        with self._cond:
            while not self._stop and (not self._due or self._due[0][0] > self.clock()):
                timeout = self._due[0][0] - self.clock() if self._due else None
                self._cond.wait(timeout)
            if self._stop:
                return None
            return heapq.heappop(self._due)[1]

    def _loop(self) -> None:
        while (key := self._next()) is not None:
            try:
                self._check(key)
            except Exception:  # one bad file must not end settling for all
                log.exception("watch.settle_error", path=key)
