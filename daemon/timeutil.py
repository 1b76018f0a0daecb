"""Time formats the API speaks (ISO 8601 UTC with milliseconds and a Z), and the times a person
types (`pause --until 18:00`, `--for 1h30m`)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta


def iso_utc(ts: float) -> str:
    # isoformat, not strftime: "%Y" gives "999" for the year 999 (a camera's garbage clock),
    # which is no ISO 8601 time.
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def parse_iso(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def local_clock(ts: float) -> str:
    """A time of day for a coach reading `status`, in the workstation's zone."""
    return datetime.fromtimestamp(ts).strftime("%H:%M:%S")


def until(at: str | None, duration: str | None, now: float) -> float | None:
    """--until HH:MM (today, or tomorrow if already past) or --for 90m / 2h / 1h30m / 45s."""
    if at:
        m = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", at.strip())
        if not m:
            raise ValueError(f"--until takes a time of day as HH:MM, got {at!r}")
        start = datetime.fromtimestamp(now)
        when = start.replace(hour=int(m[1]), minute=int(m[2]), second=0, microsecond=0)
        return (when if when > start else when + timedelta(days=1)).timestamp()
    if duration:
        parts = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", duration.strip().lower())
        if not parts or not any(parts.groups()):
            raise ValueError(f"--for takes a duration like 90m, 2h or 1h30m, got {duration!r}")
        h, m_, s = (int(x or 0) for x in parts.groups())
        return now + h * 3600 + m_ * 60 + s
    return None
