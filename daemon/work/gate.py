"""When the worker may reserve: not during an operator's pause, only inside upload hours, and not
while a recording is written when `while_recording = "pause"` (station/recording.py).

`hold` is a pure decision (tested on its own); `Gate` reads the pause from the job table and the
clock, for the dispatcher (seconds to wait) and for `status` (the reason queued jobs wait).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from daemon.config.hints import command
from daemon.service import control
from daemon.station import recording
from daemon.timeutil import local_clock
from daemon.work.schedule import Hours, parse_hours, waiting_reason

PAUSE_RECHECK = 3600.0  # an open-ended pause: slots sleep until `resume` wakes them
# The pause is read from the job table at most this often (seconds): every reserve-ahead
# thread asks before each claim, and those reads were a fifth of its work on small files.
# `resume`/`pause` from the CLI or the console reach us as a poke, which calls forget().
PAUSE_FRESH = 1.0
Hold = tuple[float, str | None]  # (seconds to wait, why)


def hold(paused: tuple[bool, float | None], hours: Hours | None, now: float,
         now_dt: datetime, config: str | None = None) -> tuple[float, str | None]:
    """(seconds to wait, why) — (0, None) when uploads may go now. `config`: the config
    file's path, for the command the reason suggests."""
    is_paused, until = paused
    if is_paused:
        if until is None:
            return PAUSE_RECHECK, f"uploads are paused; `{command('resume', config)}` starts them"
        return max(0.5, until - now), f"uploads are paused until {local_clock(until, now)}"
    if hours is not None and not hours.always and not hours.allows(now_dt):
        start = hours.next_start(now_dt)
        wait = (start - now_dt).total_seconds() if start else PAUSE_RECHECK
        return max(0.5, wait), waiting_reason(hours, now_dt)
    return 0.0, None


class Gate:
    def __init__(self, store: Any, hours_text: str,
                 wall: Callable[[], float] = time.time,
                 now_dt: Callable[[], datetime] = datetime.now,
                 clock: Callable[[], float] = time.monotonic,
                 recordings: Callable[[], Hold] | None = None, config: str | None = None):
        """`recordings`: the daemon's own hold while a recording is written; without it (the
        CLI, the console's reads) the notice the daemon keeps of it. `config`: for the hints
        a reason prints (hints.command)."""
        self.store, self.wall, self.now_dt, self.clock = store, wall, now_dt, clock
        self.recordings = recordings or self._recording_notice
        self.config = config
        self.hours = parse_hours(hours_text) if hours_text else None
        self._lock = threading.Lock()
        self._pause: tuple[bool, float | None] | None = None  # as last read
        self._recording: str | None = None  # the daemon's recording notice, as last read
        self._read_at = 0.0
        self._gen = 0  # bumped by forget(): a read that began before it is not kept

    def forget(self) -> None:
        """The pause may have changed (a poke): read it afresh next time."""
        with self._lock:
            self._pause = None
            self._gen += 1

    def _paused(self, now: float) -> tuple[bool, float | None]:
        with self._lock:
            gen = self._gen
            if self._pause is not None and self.clock() - self._read_at < PAUSE_FRESH:
                _, until = self._pause
                return (False, None) if until is not None and until <= now else self._pause
        notices = self.store.notices()
        pause = control.paused_in(notices, now)
        with self._lock:
            if gen == self._gen:
                self._pause, self._read_at = pause, self.clock()
                self._recording = notices.get(recording.NOTICE, {}).get("message")
        return pause

    def check(self) -> Hold:
        now = self.wall()
        wait, why = hold(self._paused(now), self.hours, now, self.now_dt(), self.config)
        return (wait, why) if wait > 0 else self.recordings()

    def _recording_notice(self) -> Hold:
        """Read with the pause (no read of its own)."""
        with self._lock:
            why = self._recording
        return (0.0, None) if why is None else (recording.HOLD_MIN, why)

    def seconds(self) -> float:
        return self.check()[0]
