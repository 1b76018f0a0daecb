"""Which jobs wait on a capture read that keeps failing, and the ATTENTION that says so
(landed.unanswered decides; this keeps the list and tells). In memory: after a restart, the
first failed read of each job puts it back. An entry no failed read has renewed for STALE
seconds (the job left the question some other way: taken over, removed) is dropped."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from daemon.errors import MAX_DELAY
from daemon.work import landed

STALE = 3 * MAX_DELAY  # failed reads are at most MAX_DELAY apart


class Unanswered:
    def __init__(self, tell: Callable[[str, str | None], None],
                 wall: Callable[[], float] = time.time):
        self.tell, self.wall = tell, wall
        self._lock = threading.Lock()
        self._waiting: dict[int, tuple[float, float]] = {}  # job -> (question began, last read)
        self._said: str | None = None

    def read(self, job_id: int, since: float | None) -> None:
        """A job's capture read failed (`since`: when its question began), or was answered
        (None): the job settled, or waits on an answer that came."""
        with self._lock:
            if since is None:
                self._waiting.pop(job_id, None)
            else:
                self._waiting[job_id] = (since, self.wall())
            self._publish()

    def refresh(self) -> None:
        """Drop what no failed read renewed lately (the service's tick: in memory, no read)."""
        with self._lock:
            now = self.wall()
            for job_id in [j for j, (_, last) in self._waiting.items() if now - last > STALE]:
                del self._waiting[job_id]
            self._publish()

    def _publish(self) -> None:
        now = self.wall()
        message = landed.unanswered({j: s for j, (s, _) in self._waiting.items()}, now)
        if message != self._said:
            self._said = message
            self.tell(landed.UNANSWERED, message)
