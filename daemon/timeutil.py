"""Time formats the API speaks: ISO 8601 UTC with milliseconds and a Z."""

from __future__ import annotations

from datetime import UTC, datetime


def iso_utc(ts: float) -> str:
    # isoformat, not strftime: "%Y" gives "999" for the year 999 (a camera's garbage clock),
    # which is no ISO 8601 time.
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def parse_iso(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def local_clock(ts: float) -> str:
    """A time of day for a coach reading `status`, in the workstation's zone."""
    return datetime.fromtimestamp(ts).strftime("%H:%M:%S")
