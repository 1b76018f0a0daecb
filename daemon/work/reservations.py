"""What the workers share about reservations, behind one lock: usable windows per job, the API's
clock skew (from its Date header), the upload rate seen so far, and the service-wide pause
(credentials or certificate rejected, API backing off). Pauses run on the monotonic clock."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from daemon.net.api import Reserved

SKEW_RESOLUTION = 1.5  # the Date header has one-second resolution


@dataclass(frozen=True)
class Pause:
    until: float  # monotonic
    reason: str
    notice: str | None  # the notice it set ("credentials", "certificate"), cleared on success


class Reservations:
    def __init__(self, margin: float, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time):
        self.margin, self.clock, self.wall = margin, clock, wall
        self._lock = threading.Lock()
        self._cache: dict[int, Reserved] = {}
        self._skew = 0.0  # server clock minus ours
        self._rate: float | None = None  # bytes/s, smoothed
        self._pause: Pause | None = None

    # ---- windows ---------------------------------------------------------------------------

    def usable(self, job_id: int, size: int) -> Reserved | None:
        """The job's cached reservation if its window still fits this upload."""
        with self._lock:
            res = self._cache.get(job_id)
            if res is None:
                return None
            needed = self.margin + (1.5 * size / self._rate if self._rate else 0.0)
            return res if res.expires_at - (self.wall() + self._skew) >= needed else None

    def keep(self, job_id: int, res: Reserved) -> None:
        with self._lock:
            self._cache[job_id] = res

    def drop(self, job_id: int) -> Reserved | None:
        with self._lock:
            return self._cache.pop(job_id, None)

    def lapsed(self, res: Reserved) -> bool:
        """Our clock, corrected by the server's, is past the window."""
        with self._lock:
            return self.wall() + self._skew >= res.expires_at

    # ---- clock and rate --------------------------------------------------------------------

    @property
    def skew(self) -> float:
        with self._lock:
            return self._skew

    def learn_skew(self, server_time: float) -> bool:
        """True when the server's clock turned out to differ from what we assumed by more than
        the Date header's resolution."""
        skew = server_time - self.wall()
        with self._lock:
            changed = abs(skew - self._skew) > SKEW_RESOLUTION
            self._skew = skew
        return changed

    def latest_capture_time(self) -> float:
        """Never in the future by the server's clock (the API refuses that), with a margin for
        the Date header's one-second resolution."""
        with self._lock:
            return self.wall() + min(self._skew, 0.0) - 2.0

    def learn_rate(self, size: int, seconds: float) -> None:
        if seconds <= 0.5:
            return
        rate = size / seconds
        with self._lock:
            self._rate = rate if self._rate is None else 0.7 * self._rate + 0.3 * rate

    # ---- the service-wide pause ------------------------------------------------------------

    def pause(self, seconds: float, reason: str, notice: str | None = None) -> None:
        with self._lock:
            until = self.clock() + seconds
            if self._pause is None or until > self._pause.until or notice:
                self._pause = Pause(until, reason, notice or
                                    (self._pause.notice if self._pause else None))

    def paused_for(self) -> float:
        """Seconds until reservations may be made again (0 = not paused)."""
        with self._lock:
            if self._pause is None:
                return 0.0
            return max(0.0, self._pause.until - self.clock())

    def lift(self) -> str | None:
        """The cause may be fixed (a new token or trust file): reservations may go now, but the
        notice is kept, so the next success still reports it resolved. Returns that notice."""
        with self._lock:
            if self._pause is None:
                return None
            self._pause = Pause(self.clock(), self._pause.reason, self._pause.notice)
            return self._pause.notice

    def resumed(self) -> str | None:
        """A reservation succeeded: lift the pause; returns the notice to clear, if any."""
        with self._lock:
            pause, self._pause = self._pause, None
            return pause.notice if pause else None
