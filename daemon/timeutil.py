"""Time formats the API speaks (ISO 8601 UTC with milliseconds and a Z), and the times a person
types (`pause --until 18:00`, `--for 1h30m`)."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta


def iso_utc(ts: float) -> str:
    # isoformat, not strftime: "%Y" gives "999" for the year 999 (a camera's garbage clock),
    # which is no ISO 8601 time.
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def parse_iso(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


MAX_PAUSE = 366 * 86400.0  # a longer pause is a typo (99999999h), not a plan


def local_clock(ts: float, now: float) -> str:
    """A time for a coach reading `status`, in the workstation's zone: the time of day when
    it falls on `now`'s day, else with its date. Any number is shown, never raised on (a
    garbage time from the table is shown as the number it is)."""
    try:
        when, today = datetime.fromtimestamp(ts), datetime.fromtimestamp(now)
    except (OverflowError, ValueError, OSError):
        return f"{ts} s after 1970" if math.isfinite(ts) else "an impossible time"
    if when.date() == today.date():
        return when.strftime("%H:%M:%S")
    # isoformat, not strftime: "%Y" gives "999" for the year 999.
    return when.isoformat(" ", "seconds")[:19]


def until(at: str | None, duration: str | None, now: float) -> float | None:
    """--until HH:MM (today, or tomorrow if already past) or --for 90m / 2h / 1h30m / 45s (at
    most MAX_PAUSE). ValueError: one line that says what was wrong."""
    if at is not None:
        m = re.fullmatch(r"([01]?[0-9]|2[0-3]):([0-5][0-9])", at.strip())
        if not m:
            raise ValueError(f"--until takes a time of day as HH:MM, got {at!r}")
        start = datetime.fromtimestamp(now)
        when = start.replace(hour=int(m[1]), minute=int(m[2]), second=0, microsecond=0)
        return (when if when > start else when + timedelta(days=1)).timestamp()
    if duration is not None:
        parts = re.fullmatch(r"(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?",
                             duration.strip().lower())
        if not parts or not any(parts.groups()):
            raise ValueError(f"--for takes a duration like 90m, 2h or 1h30m, got "
                             f"{duration[:40]!r}")
        # More than 12 digits is more than 366 days in any unit (and int() of thousands of
        # digits is refused by Python itself).
        digits = [(g or "0").lstrip("0") or "0" for g in parts.groups()]
        seconds = math.inf if any(len(d) > 12 for d in digits) else \
            int(digits[0]) * 3600 + int(digits[1]) * 60 + int(digits[2])
        if seconds > MAX_PAUSE:
            raise ValueError("--for is longer than 366 days; `uplift-capture pause` without "
                             "it pauses until `uplift-capture resume`")
        if seconds <= 0:
            raise ValueError(f"--for takes a duration longer than 0, got {duration[:40]!r}")
        return now + seconds
    return None
