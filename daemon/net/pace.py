"""The pace of a station's reads of Uplift's captures (GET /captures and /captures/{id}):
at most `rate` requests in any second, together, whoever asks (the follower, the check of a
lost answer). Reservations and uploads are not paced here.

Requests are spaced 1/rate apart (no bursts), so any window of one second holds at most `rate`
of them; a Retry-After holds them all until it has passed (MAX_HOLD at most). `slot` is the
pure decision, `wait` sleeps until it (monotonic time)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

MAX_HOLD = 60.0  # seconds a Retry-After holds every read at most


class Pace:
    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.rate = rate
        self.clock, self.sleep = clock, sleep
        self._next = float("-inf")  # the earliest time the next request may go
        self._lock = threading.Lock()

    def set_rate(self, rate: float) -> None:
        with self._lock:
            self.rate = rate

    def slot(self, now: float) -> float:
        """Take the next request's turn: the time it may go (>= now)."""
        with self._lock:
            at = max(now, self._next)
            self._next = at + 1.0 / self.rate
            return at

    def hold(self, seconds: float) -> None:
        """The server asked for a pause (Retry-After): nothing goes before it has passed, or
        MAX_HOLD (a day's Retry-After would hang a worker asking about a lost answer; each
        caller's own schedule honours the whole of it)."""
        with self._lock:
            self._next = max(self._next, self.clock() + min(MAX_HOLD, max(0.0, seconds)))

    def wait(self) -> None:
        now = self.clock()
        at = self.slot(now)
        if at > now:
            self.sleep(at - now)
