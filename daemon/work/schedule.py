"""`[upload] hours`: the local times when uploads may start ("19:00-07:00",
"Mon-Fri 19:00-07:00, Sat-Sun 00:00-24:00"). Pure functions over local datetimes.

A range that crosses midnight belongs to the weekday it starts on: "Fri 19:00-07:00" runs
Friday 19:00 to Saturday 07:00. A range without weekdays applies to every day.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

DAY = 24 * 60
WEEK = 7 * DAY
DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_DAY_NAMES = {name.lower(): i for i, name in enumerate(DAYS)} | {
    full: i for i, full in enumerate(("monday", "tuesday", "wednesday", "thursday", "friday",
                                      "saturday", "sunday"))}
_RANGE = re.compile(r"(?:(?P<days>[A-Za-z]+(?:\s*-\s*[A-Za-z]+)?)\s+)?"
                    r"(?P<start>\d{1,2}:\d{2})\s*-\s*(?P<end>\d{1,2}:\d{2})")


def weekday(name: str) -> int:
    """"Mon"/"monday" (any case) -> 0..6; ValueError naming the word otherwise."""
    try:
        return _DAY_NAMES[name.strip().lower()]
    except KeyError:
        raise ValueError(f"{name!r} is not a weekday (Mon, Tue, Wed, Thu, Fri, Sat, Sun)") \
            from None


def clock_minutes(text: str, allow_24: bool = False) -> int:
    """"19:00" -> minutes after midnight; "24:00" only where `allow_24` (an end)."""
    m = re.fullmatch(r"(\d{1,2}):(\d{2})", text.strip())
    if m:
        hh, mm = int(m.group(1)), int(m.group(2))
        if (hh < 24 and mm < 60) or (allow_24 and hh == 24 and mm == 0):
            return hh * 60 + mm
    raise ValueError(f"{text!r} is not a time of day like 07:00"
                     + (" (or 24:00 as an end)" if allow_24 else ""))


def _days(spec: str | None) -> list[int]:
    if not spec:
        return list(range(7))
    first, _, last = (part.strip() for part in spec.partition("-"))
    a = weekday(first)
    b = weekday(last) if last else a
    return [(a + i) % 7 for i in range((b - a) % 7 + 1)]  # "Fri-Mon" wraps over the weekend


@dataclass(frozen=True)
class Hours:
    """Allowed intervals as sorted, merged [start, end) minutes of the week (Mon 00:00 = 0)."""
    spans: tuple[tuple[int, int], ...]
    text: str = ""

    @property
    def always(self) -> bool:
        return self.spans == ((0, WEEK),)

    def allows(self, dt: datetime) -> bool:
        m = _minute_of_week(dt)
        return any(a <= m < b for a, b in self.spans)

    def next_start(self, dt: datetime) -> datetime | None:
        """When uploads may begin: `dt` itself when inside, else the next range's start
        (None only for hours that never open, which parse_hours refuses)."""
        if self.allows(dt):
            return dt
        m = _minute_of_week(dt)
        starts = [a for a, _ in self.spans]
        if not starts:
            return None
        later = [a for a in starts if a > m]
        target = later[0] if later else starts[0] + WEEK
        return _at(dt, target - m)

    def next_end(self, dt: datetime) -> datetime | None:
        """When the window that holds `dt` (or else the next one) closes; None when it never
        does (every minute of the week allowed)."""
        if self.always or not self.spans:
            return None
        m = _minute_of_week(dt)
        for b in [b for _, b in self.spans] + [b + WEEK for _, b in self.spans]:
            if m < b:
                end = b
                # A window running over Sunday midnight is stored as two spans: join them.
                if end % WEEK == 0 and self.spans[0][0] == 0:
                    end += self.spans[0][1]
                return _at(dt, end - m)
        return None  # pragma: no cover - spans are never empty after parsing

    def next_change(self, dt: datetime) -> datetime | None:
        """The next moment `allows` flips (for waking a scheduler)."""
        return self.next_end(dt) if self.allows(dt) else self.next_start(dt)

    def __str__(self) -> str:
        return self.text


def _minute_of_week(dt: datetime) -> int:
    return dt.weekday() * DAY + dt.hour * 60 + dt.minute


def _at(dt: datetime, minutes_ahead: int) -> datetime:
    """The wall-clock time `minutes_ahead` after dt's minute, built from date and time so a
    DST change in between still gives "19:00" (not 18:00 or 20:00)."""
    base = dt.replace(second=0, microsecond=0)
    total = base.hour * 60 + base.minute + minutes_ahead
    day: date = base.date() + timedelta(days=total // DAY)
    total %= DAY
    return datetime.combine(day, time(total // 60, total % 60), tzinfo=dt.tzinfo)


def parse_hours(text: str) -> Hours:
    """"19:00-07:00", "Mon-Fri 19:00-07:00, Sat-Sun 00:00-24:00" -> Hours.
    ValueError with a plain reason for anything else."""
    if not text or not text.strip():
        raise ValueError("no hours given (write e.g. \"19:00-07:00\")")
    raw: list[tuple[int, int]] = []
    for part in text.split(","):
        part = part.strip()
        m = _RANGE.fullmatch(part)
        if not m:
            raise ValueError(f"{part!r} is not a range like \"19:00-07:00\" or "
                             f"\"Mon-Fri 19:00-07:00\"")
        start = clock_minutes(m.group("start"))
        end = clock_minutes(m.group("end"), allow_24=True)
        if start == end:
            raise ValueError(f"{part!r} is empty (start and end are the same; "
                             f"\"00:00-24:00\" is the whole day)")
        length = end - start if end > start else end + DAY - start
        for d in _days(m.group("days")):
            a = d * DAY + start
            b = a + length
            if b <= WEEK:
                raw.append((a, b))
            else:  # Sunday night into Monday morning
                raw += [(a, WEEK), (0, b - WEEK)]
    merged: list[tuple[int, int]] = []
    for a, b in sorted(raw):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return Hours(tuple(merged), text.strip())


def waiting_reason(hours: Hours, now_dt: datetime) -> str:
    """"waits for upload hours, from 19:00" ("from Mon 19:00" when not today); "" inside."""
    start = hours.next_start(now_dt)
    if start is None or hours.allows(now_dt):
        return ""
    return f"waits for upload hours, from {local_when(start, now_dt)}"


def local_when(at: datetime, now_dt: datetime) -> str:
    """"19:00" today, "Mon 19:00" on another day: a local time a coach can read."""
    when = at.strftime("%H:%M")
    if at.date() != now_dt.date():
        when = f"{DAYS[at.weekday()]} {when}"
    return when


# --- [notify] daily_summary ---

def parse_clock(text: str) -> time:
    m = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*", text or "")
    if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59:
        raise ValueError(f"{text!r} is not a time of day like \"18:00\"")
    return time(int(m.group(1)), int(m.group(2)))


def next_summary_at(now_dt: datetime, at: str) -> datetime:
    """The next "HH:MM" strictly after `now_dt` (local wall clock, DST-proof)."""
    t = parse_clock(at)
    day = now_dt.date()
    candidate = datetime.combine(day, t, tzinfo=now_dt.tzinfo)
    if candidate <= now_dt:
        candidate = datetime.combine(day + timedelta(days=1), t, tzinfo=now_dt.tzinfo)
    return candidate


@dataclass(frozen=True)
class DailySummary:
    """`[notify] daily_summary = "18:00"`: when to send, and the text."""
    at: str

    def __post_init__(self) -> None:
        parse_clock(self.at)

    def next_at(self, now_dt: datetime) -> datetime:
        return next_summary_at(now_dt, self.at)

    @staticmethod
    def text(counts: dict[str, int], failed: Sequence[tuple[str, str]] = (),
             max_files: int = 20) -> str:
        """counts per state today ({"done": 12, "failed": 1, "queued": 3}) and failed files."""
        order = ("done", "failed", "skipped", "queued", "pending", "uploading", "reserved")
        parts = [f"{counts[s]} {s}" for s in order if counts.get(s)]
        parts += [f"{n} {s}" for s, n in sorted(counts.items()) if s not in order and n]
        lines = ["Today: " + (", ".join(parts) if parts else "nothing to upload")]
        for path, reason in failed[:max_files]:
            lines.append(f"- {path}: {reason}")
        if len(failed) > max_files:
            lines.append(f"… and {len(failed) - max_files} more")
        return "\n".join(lines)
