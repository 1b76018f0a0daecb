"""When the worker may reserve: not during an operator's pause, and only inside upload hours.

`hold` is a pure decision (tested on its own); `Gate` reads the pause from the job table and the
clock, for the dispatcher (seconds to wait) and for `status` (the reason queued jobs wait).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from daemon import control
from daemon.schedule import Hours, parse_hours, waiting_reason
from daemon.timeutil import local_clock

PAUSE_RECHECK = 3600.0  # an open-ended pause: slots sleep until `resume` wakes them


def hold(paused: tuple[bool, float | None], hours: Hours | None, now: float,
         now_dt: datetime) -> tuple[float, str | None]:
    """(seconds to wait, why) — (0, None) when uploads may go now."""
    is_paused, until = paused
    if is_paused:
        if until is None:
            return PAUSE_RECHECK, "uploads are paused; `uplift-capture resume` starts them"
        return max(0.5, until - now), f"uploads are paused until {local_clock(until)}"
    if hours is not None and not hours.always and not hours.allows(now_dt):
        start = hours.next_start(now_dt)
        wait = (start - now_dt).total_seconds() if start else PAUSE_RECHECK
        return max(0.5, wait), waiting_reason(hours, now_dt)
    return 0.0, None


class Gate:
    def __init__(self, store: Any, hours_text: str,
                 wall: Callable[[], float] = time.time,
                 now_dt: Callable[[], datetime] = datetime.now):
        self.store, self.wall, self.now_dt = store, wall, now_dt
        self.hours = parse_hours(hours_text) if hours_text else None

    def check(self) -> tuple[float, str | None]:
        now = self.wall()
        return hold(control.paused(self.store, now), self.hours, now, self.now_dt())

    def seconds(self) -> float:
        return self.check()[0]
