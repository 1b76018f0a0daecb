"""`upload.bandwidth_limit`: a token bucket shared by all uploads, so the limit caps their sum,
and rclone's timetable ("08:00,512KiB/s 12:00,10MiB/s 18:00,off") that changes it live.

Units are BYTES per second unless "bit/s" (or "bps") is written. Suffixes as in rclone:
B, K/Ki/KiB, M/Mi/MiB, G, T are binary (K = 1024); KB, MB, GB are decimal (what this daemon
always accepted); bits take network units (1 Mbit/s = 1,000,000 bit/s). A bare number is
bytes/s (rclone would read KiB/s), so a timetable slot must name its unit. "off" or "0" is
unlimited.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as dtime

from daemon.work.schedule import DAY, WEEK, clock_minutes, weekday

_BIN = {"": 1, "b": 1, "k": 1024, "ki": 1024, "kib": 1024, "m": 1024**2, "mi": 1024**2,
        "mib": 1024**2, "g": 1024**3, "gi": 1024**3, "gib": 1024**3, "t": 1024**4,
        "ti": 1024**4, "tib": 1024**4}
_DEC = {"kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4}
BYTE_UNITS = _BIN | _DEC
# bit rates: network convention, decimal unless "Ki"/"Mi" is written.
BIT_UNITS = {"": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "ki": 1024, "mi": 1024**2,
             "gi": 1024**3}
_RATE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*?)\s*(bits?(?:\s*/\s*s)?|bps|/\s*s)?\s*",
                   re.IGNORECASE)
OFF = ("off", "unlimited", "none")
MAX_RATE = 1024**4  # bytes/s; format_rate spells every rate up to it without an exponent


def parse_rate(text: str) -> float:
    """"20MB/s", "500 KiB/s", "10M", "8Mbit/s", "off", "0" -> bytes per second (0 = unlimited).
    rclone's "up:down" pair gives the upload part (this daemon only uploads)."""
    value = text.strip()
    if ":" in value:  # both halves must be rates ("08:00" is not)
        value, _, down = value.partition(":")
        if not (_plain(down) and _plain(value)):
            value = "?"  # refused below, naming the whole text
    if value.lower() in OFF:
        return 0.0
    m = _RATE.fullmatch(value)
    if m:
        number, unit, per = float(m.group(1)), m.group(2).lower(), (m.group(3) or "").lower()
        rate = None
        if per.startswith("bit") or per == "bps":
            if unit in BIT_UNITS:
                rate = number * BIT_UNITS[unit] / 8
        elif unit in BYTE_UNITS:
            rate = number * BYTE_UNITS[unit]
        if rate is not None:
            return _sane(text, rate)
    raise ValueError(f"{text!r} is not a rate like \"20MB/s\", \"512KiB/s\", \"10M\", "
                     f"\"8Mbit/s\" or \"off\"")


def _sane(text: str, rate: float) -> float:
    # "999...9" (400 digits) is float inf, and a limiter at inf or at a thousandth of a byte a
    # second is no limit a person meant: refuse both with a reason.
    if rate > MAX_RATE:  # also inf
        raise ValueError(f"{text!r} is more than 1 TiB/s, faster than any link; write \"off\" "
                         f"for no limit")
    if 0 < rate < 1:
        raise ValueError(f"{text!r} is less than one byte a second, no upload would ever finish; "
                         f"write \"off\" for no limit")
    return rate


def _plain(text: str) -> bool:
    try:
        parse_rate(text)
    except ValueError:
        return False
    return ":" not in text


def format_rate(rate: float) -> str:
    if rate <= 0:
        return "off"
    for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if rate >= size:
            return f"{rate / size:g}{unit}/s"
    return f"{rate:g}B/s"


@dataclass(frozen=True)
class Timetable:
    """Slots as (minute of the week, bytes/s), sorted; one slot at 0 for a plain rate."""
    slots: tuple[tuple[int, float], ...]
    text: str = ""

    @property
    def constant(self) -> bool:
        return len({rate for _, rate in self.slots}) <= 1

    @property
    def min_rate(self) -> float:
        """The lowest real limit (0 when never limited): uploaders size chunks by it, so a
        slot change takes effect within one chunk."""
        limits = [rate for _, rate in self.slots if rate > 0]
        return min(limits) if limits else 0.0

    def _index(self, m: int) -> int:
        # The last slot at or before m; before the first slot of the week, last week's last.
        i = len(self.slots) - 1
        for j, (start, _) in enumerate(self.slots):
            if start <= m:
                i = j
        return i

    def rate_at(self, dt: datetime) -> float:
        """Bytes per second at local time `dt` (0 = unlimited)."""
        return self.slots[self._index(_minute_of_week(dt))][1]

    def next_change(self, dt: datetime) -> datetime | None:
        """The next slot boundary where the rate really changes; None for a constant limit."""
        if self.constant:
            return None
        m = _minute_of_week(dt)
        current = self.rate_at(dt)
        n = len(self.slots)
        start = self._index(m)
        for k in range(1, n + 1):
            at, rate = self.slots[(start + k) % n]
            if rate != current:
                ahead = (at - m) % WEEK or WEEK
                return _at(dt, ahead)
        return None  # pragma: no cover - constant handled above

    def __str__(self) -> str:
        return self.text


def _minute_of_week(dt: datetime) -> int:
    return dt.weekday() * DAY + dt.hour * 60 + dt.minute


def _at(dt: datetime, minutes_ahead: int) -> datetime:
    base = dt.replace(second=0, microsecond=0)
    total = base.hour * 60 + base.minute + minutes_ahead
    day: date = base.date() + timedelta(days=total // DAY)
    total %= DAY
    return datetime.combine(day, dtime(total // 60, total % 60), tzinfo=dt.tzinfo)


_SLOT = re.compile(r"(?:(?P<day>[A-Za-z]+)-)?(?P<hhmm>\d{1,2}:\d{2}),(?P<rate>.+)")


def parse_limit(text: str) -> Timetable:
    """A plain rate ("512KiB/s", "0", "off") or rclone's timetable: space- or
    semicolon-separated "HH:MM,RATE" slots, each optionally "Mon-HH:MM,RATE". A slot without
    a weekday applies to every day; the rate before the first slot is the week's last."""
    value = (text or "").strip()
    if not value:
        raise ValueError("no bandwidth limit given (write \"0\" for unlimited)")
    if "," not in value:  # a plain rate ("500 KiB/s" may hold a space)
        return Timetable(((0, parse_rate(value)),), value)
    tokens = [t for t in re.split(r"[\s;]+", value) if t]
    slots: dict[int, float] = {}
    seen: set[tuple[str, int]] = set()
    for token in tokens:
        m = _SLOT.fullmatch(token)
        if not m:
            raise ValueError(f"{token!r} is not a timetable slot like \"08:00,512KiB/s\" or "
                             f"\"Mon-08:00,512KiB/s\"")
        minute = clock_minutes(m.group("hhmm"))
        rate_text = m.group("rate")
        if re.fullmatch(r"\s*\d+(\.\d+)?\s*(:.*)?", rate_text) and parse_rate(rate_text) != 0:
            # rclone reads a bare number as KiB/s; a plain rate here means bytes. Refuse to guess.
            raise ValueError(f"{token!r}: write a unit (e.g. \"{rate_text}KiB/s\"); a bare "
                             f"number is ambiguous")
        rate = parse_rate(rate_text)
        day = m.group("day")
        days = [weekday(day)] if day else range(7)
        if ((day or "").lower()[:3], minute) in seen:
            raise ValueError(f"{token!r}: {m.group('hhmm')} is given twice")
        seen.add(((day or "").lower()[:3], minute))
        for d in days:
            # A weekday slot wins over an every-day slot at the same minute (rclone's order).
            if day or d * DAY + minute not in slots:
                slots[d * DAY + minute] = rate
    return Timetable(tuple(sorted(slots.items())), value)


class Limiter:
    """Token bucket shared by all uploads. `set_rate` changes it live (thread-safe; a waiting
    `take` re-reads the rate every `slice_seconds`); `toggle()` turns the limit off and on like
    rclone's SIGUSR2 and is safe to call from a signal handler (one bool, no lock)."""

    def __init__(self, rate: float, burst_seconds: float = 0.25,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, slice_seconds: float = 0.1):
        self.burst_seconds, self.slice_seconds = burst_seconds, slice_seconds
        self.clock, self.sleep = clock, sleep
        self._lock = threading.Lock()
        self._rate = float(rate)
        self.capacity = self._rate * burst_seconds
        self.tokens = self.capacity
        self.last = clock()
        self.toggled = False  # True: the limit is switched off (SIGUSR2)
        # How often the rate in force changed: a rate measured across a change is void.
        self.changes = 0

    @property
    def configured(self) -> float:
        """The rate set (from config or the timetable), toggled off or not."""
        return self._rate

    @property
    def rate(self) -> float:
        """The rate in force now: 0 (unlimited) while toggled off."""
        return 0.0 if self.toggled else self._rate

    @rate.setter
    def rate(self, value: float) -> None:
        self.set_rate(value)

    def set_rate(self, rate: float) -> None:
        with self._lock:
            now = self.clock()
            if self._rate > 0:
                self.tokens = min(self.capacity, self.tokens + (now - self.last) * self._rate)
            if max(0.0, float(rate)) != self._rate:
                self.changes += 1
            self._rate = max(0.0, float(rate))
            self.capacity = self._rate * self.burst_seconds
            # Debt (bytes already sent) is kept, so a lower rate holds from the next chunk;
            # credit is capped at one burst of the new rate.
            self.tokens = min(self.tokens, self.capacity)
            self.last = now

    def toggle(self) -> bool:
        """Switch the limit off, or back on; returns True when it is now off."""
        self.toggled = not self.toggled
        self.changes += 1
        return self.toggled

    def take(self, n: int) -> None:
        """Block until `n` bytes may go."""
        with self._lock:
            if self.rate <= 0:
                return
            self._refill()
            self.tokens -= n
        while True:
            with self._lock:
                if self.rate <= 0:
                    self.tokens = max(self.tokens, 0.0)
                    return
                self._refill()
                if self.tokens >= -1e-6:
                    return
                wait = -self.tokens / self._rate
            self.sleep(min(wait, self.slice_seconds))

    def _refill(self) -> None:
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.last) * self._rate)
        self.last = now


def lower(a: float, b: float) -> float:
    """The lower of two limits, where 0 is none."""
    return min(a, b) if a > 0 and b > 0 else max(a, b)


def apply_timetable(limiter: Limiter, table: Timetable, now_dt: datetime,
                    cap: float = 0.0) -> datetime | None:
    """Set the limiter to the slot in force at `now_dt`, or to `cap` when lower (while a
    recording is written: station/recording.py); returns when to call again."""
    rate = lower(table.rate_at(now_dt), cap)
    if rate != limiter.configured:
        limiter.set_rate(rate)
    return table.next_change(now_dt)
