"""A warning before a disk fills: the `low_disk` notice while the file system of a watch folder
or of the SQLite job table has less free than `[station] low_disk`, cleared when space is
back. A full capture disk loses the next recording; a full job-table disk stops the daemon.
It is a warning, not a fault: uploads go on and `/healthz` stays green.

One low-rate thread looks (`SpaceWatch`); each statvfs runs bounded (fsprobe), so a watch
folder on a share that hangs is skipped, not waited for. The decision is pure (`is_low`).
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from daemon import logs
from daemon.jobs.engine import sqlite_path
from daemon.net.bandwidth import BYTE_UNITS
from daemon.station import fsprobe

log = logs.get("station")
NOTICE = "low_disk"
# Seconds between looks: FAST while a disk fills or is near its limit, SLOW otherwise. Every
# look wakes a thread per path (a hung share must not stall it), which an idle daemon feels.
CHECK_EVERY, SLOW = 5.0, 60.0
NEAR = 4  # free under this many times the limit: looked at every CHECK_EVERY seconds
MOVED = 256 * 1024**2  # free space that moved this much (or 1 % of the disk) since the last look
# The fastest a recording fills a disk (bytes a second): a disk with less than SLOW seconds of
# it above its limit is looked at every CHECK_EVERY seconds, as it could cross it before SLOW.
FILLS = 100 * 1000**2
DEFAULT_SHARE, DEFAULT_FLOOR = 0.05, 2 * 1024**3  # unset: the larger of 5 % and 2 GiB
RECOVER = 1.05  # cleared only once free is 5 % above the limit: no flapping at the line
MAX_SIZE = 2**63  # bytes: statvfs counts in 64 bits, so no free space reaches it
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*")
_PERCENT = re.compile(r"\s*(\d+(?:\.\d+)?)\s*%\s*")


@dataclass(frozen=True)
class Threshold:
    """Free space below which a file system is low: `size` bytes, or `share` of its size
    (0 < share < 1); None and None is off. The default is both: the larger wins."""
    size: int | None = None
    share: float | None = None

    def limit(self, total: int) -> int | None:
        """Bytes free below which a file system of `total` bytes is low; None: never."""
        parts = [p for p in (self.size, None if self.share is None else int(total * self.share))
                 if p is not None]
        return max(parts) if parts else None


DEFAULT = Threshold(DEFAULT_FLOOR, DEFAULT_SHARE)
OFF = Threshold()


def parse_threshold(text: str) -> Threshold:
    """"24MiB", "2GiB", "500MB", "10%", "off"; "" is the default. Units as bandwidth_limit
    has them (K, M, G, KiB, MiB, GiB binary; KB, MB, GB decimal); a bare number is bytes."""
    value = text.strip()
    if not value:
        return DEFAULT
    if value.lower() == "off":
        return OFF
    if (m := _PERCENT.fullmatch(value)) is not None:
        share = float(m.group(1)) / 100
        if not 0 < share < 1:
            raise ValueError(f"{text!r} must be a share between 0 % and 100 %, such as \"10%\"")
        return Threshold(share=share)
    m = _SIZE.fullmatch(value)
    unit = m.group(2).lower() if m is not None else ""
    if m is None or unit not in BYTE_UNITS:
        raise ValueError(f"{text!r} is not a size like \"24MiB\", \"2GiB\", a share like "
                         f"\"10%\", or \"off\"")
    number = float(m.group(1)) * BYTE_UNITS[unit]
    if not number <= MAX_SIZE:  # 400 digits are inf, which int() would raise on
        raise ValueError(f"{text!r} is larger than any file system can report (8 EiB)")
    size = int(number)
    if size <= 0:
        raise ValueError(f"{text!r} is no space at all; write \"off\" for no warning")
    return Threshold(size=size)


def is_low(free: int, total: int, threshold: Threshold, was_low: bool = False) -> bool:
    """Low while `free` bytes are under the limit; once low, until they are `RECOVER` above."""
    limit = threshold.limit(total)
    if limit is None:
        return False
    return free < (limit * RECOVER if was_low else limit)


def soon(before: int | None, free: int, total: int, limit: int | None, low: bool,
         slow: float = SLOW) -> bool:
    """Is this file system to be looked at again in CHECK_EVERY seconds (else `slow`)? Yes when
    it is new, low, within NEAR times its limit or `slow` seconds of FILLS above it (a small
    limit: "24MiB" is NEAR at 96 MiB, which a recording fills in a second), or its free space
    moved since the last look (something writes)."""
    if before is None or low:
        return True
    if limit and free < max(NEAR * limit, limit + slow * FILLS):  # (0: never low)
        return True
    return abs(free - before) >= max(1, min(MOVED, total // 100))


def human(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def message(low: dict[str, int]) -> str | None:
    """The notice for the paths low now (path -> their limit), stable while they stay low (a
    figure of free bytes would change it, and notify, at every look)."""
    if not low:
        return None
    return "; ".join(f"low disk space: less than {human(limit)} free on the file system of "
                     f"{path}" for path, limit in sorted(low.items())) + \
        " (recordings and uploads fail when it is full)"


class SpaceWatch:
    """The thread that looks at the paths' free space and tells `on_notice(NOTICE, message |
    None)` when the low set changes: every `every` seconds while `soon` says so for a path
    (or `fast()`, or after a `poke()`), else every `slow`. `paths()` is asked each time (a
    reload may change the watch folders). `then()` runs after each look, on this thread and
    at its rate (retention: station/retention.py, which asks for `fast` while it is on)."""

    def __init__(self, paths: Callable[[], Iterable[str]], threshold: Callable[[], Threshold],
                 on_notice: Callable[[str, str | None], None], every: float = CHECK_EVERY,
                 wait: float = fsprobe.WAIT, then: Callable[[], None] | None = None,
                 slow: float = SLOW, fast: Callable[[], bool] = lambda: False):
        self.paths, self.threshold, self.on_notice = paths, threshold, on_notice
        self.then, self.fast = then, fast
        self.every, self.slow, self.wait = every, slow, wait
        self._stop = threading.Event()
        self._poked = threading.Event()  # a reload: look again now, not in `slow` seconds
        self._free: dict[str, int] = {}  # path -> free bytes at its last look
        self._low: dict[str, int] = {}
        self._said: str | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="space", daemon=True)
        self._thread.start()

    def revive(self) -> bool:
        """Start the thread afresh if it died (the health tick asks); True when it had."""
        if self._thread is None or self._thread.is_alive() or self._stop.is_set():
            return False
        log.error("station.space_died")
        self.start()
        return True

    def poke(self) -> None:
        """Look again at the next `every` (a reload may have changed the limit or folders)."""
        self._poked.set()

    def seen(self, _path: str) -> None:
        """The intake's hook for any file event under a watch folder: something writes there
        (a recording begins, a card is copied in), so the next look comes at the next `every`
        rather than at the slow pace."""
        self.poke()

    def stop(self) -> None:
        self._stop.set()
        self._poked.set()
        if self._thread is not None:
            self._thread.join(self.wait + 1.0)

    def check(self) -> bool:
        """One look at every path; a path that does not answer keeps what it was. True when
        the next look is to come soon (`soon`)."""
        threshold = self.threshold()
        wanted = list(dict.fromkeys(self.paths()))
        again = False
        for path in wanted:
            st = fsprobe.space(path, self.wait)
            if st is None:
                again = True  # not answering (the watch folder's own notice says so)
                continue
            if isinstance(st, OSError):
                self._low.pop(path, None)  # not there: the watch folder's notice says so
                self._free.pop(path, None)
                again = True  # a disk plugged back in may be nearly full: looked at soon
                continue
            free, total = st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize
            # Nothing is recorded onto a read-only file system (a card or image mounted so):
            # it is never low, though it has no space free.
            limit = None if st.f_flag & os.ST_RDONLY else threshold.limit(total)
            again |= soon(self._free.get(path), free, total, limit, path in self._low,
                           self.slow)
            self._free[path] = free
            if limit is not None and is_low(free, total, threshold, path in self._low):
                if path not in self._low:
                    log.warning("station.low_disk", path=path, free=free, limit=limit)
                self._low[path] = limit
            elif self._low.pop(path, None) is not None:
                log.info("station.disk_space_back", path=path, free=free)
        self._low = {p: v for p, v in self._low.items() if p in wanted}
        self._free = {p: v for p, v in self._free.items() if p in wanted}
        said = message(self._low)
        if said != self._said:
            self._said = said
            self.on_notice(NOTICE, said)
        return again

    def _loop(self) -> None:
        while True:
            started = time.monotonic()
            self._poked.clear()
            again = True
            try:
                again = self.check()
            except Exception:  # one failed look must not end the warnings
                log.exception("station.space_check_failed")
            try:
                if self.then is not None:
                    self.then()
            except Exception:  # nor one failed retention look
                log.exception("station.retention_failed")
            if self._stop.wait(max(0.0, self.every - (time.monotonic() - started))):
                return
            if not (again or self.fast()):
                self._poked.wait(max(0.0, self.slow - (time.monotonic() - started)))
                if self._stop.is_set():
                    return


def watched_paths(watches: Iterable[str], database_url: str) -> list[str]:
    """The file systems the station depends on: each watch folder's and the SQLite job
    table's (a PostgreSQL server's disk is its own administrator's)."""
    db = sqlite_path(database_url)
    return [*watches] + ([str(db.parent)] if db is not None else [])
