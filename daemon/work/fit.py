"""Will a file's upload fit inside the window a reservation grants? A pure decision from its
size, the rate measured while uploading, the window's length, the bandwidth timetable and the
upload hours: it fits now, it fits only from a later time (the job waits for it), or it never
fits (a person must change something: the job fails with a reason that says what).

"Never" rests on two measurements, each taken under one limit throughout: an upload that
spanned a timetable change or a SIGUSR2 toggle averaged two limits (and is recorded with
the one in force at its end), so it says nothing and is dropped. One measurement alone that
says "never" asks for another (MEASURE: the job goes on trying, bounded by the lapses).

The rate model is deliberately optimistic, since a wrong "never" fails a file that would have
gone, while a wrong "fits" only costs a window (lapses are bounded, errors.after_lapse): a
measured rate the bandwidth limit held back says nothing about the link beyond it, so a period
with a higher limit (or none) is taken to run at that limit (or to be fast enough)."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from daemon.net.bandwidth import Timetable, format_rate
from daemon.work.schedule import Hours, local_when

LIMIT_BOUND = 0.8  # a measured rate this close to its share of the limit was held back by it
CYCLE = timedelta(days=7)  # timetables and upload hours repeat weekly
MAX_STARTS = 2000  # a guard: a week holds far fewer slot and hours boundaries


@dataclass(frozen=True)
class Measured:
    """Bytes per second the endpoint acknowledged, and the limit in force then (0 = none);
    `steady`: that limit held throughout (no timetable change, no toggle), else it is void."""
    rate: float
    limit: float = 0.0
    steady: bool = True

    def capacity(self, concurrency: int = 1) -> float | None:
        """The link's own rate when the limit did not hold the upload back; None when it did
        (then the link may be faster: unknown). The limit is shared by up to `concurrency`
        uploads, so one upload's share may be that much smaller."""
        if self.limit <= 0 or self.rate < LIMIT_BOUND * self.limit / max(1, concurrency):
            return self.rate
        return None


class Verdict(StrEnum):
    FITS = "fits"
    WAIT = "wait"
    NEVER = "never"
    MEASURE = "measure"  # one measurement says never: measure again before failing it


@dataclass(frozen=True)
class Fit:
    verdict: Verdict
    at: datetime | None = None  # WAIT: the local time from which it fits
    reason: str = ""


def rate_in(capacity: float | None, limit: float) -> float:
    """The rate an upload gets under `limit` (0 = none); inf when nothing known bounds it."""
    bounds = [r for r in (capacity, limit if limit > 0 else None) if r is not None]
    return min(bounds) if bounds else math.inf


def upload_seconds(size: int, start: datetime, capacity: float | None, table: Timetable,
                   within: float) -> float:
    """How long `size` bytes take from `start`, following the timetable's rate changes; inf
    once it is clear they take longer than `within` seconds."""
    t, left, spent = start, float(size), 0.0
    for _ in range(MAX_STARTS):
        rate = rate_in(capacity, table.rate_at(t))
        if rate == math.inf:
            return spent
        nxt = table.next_change(t)
        span = math.inf if nxt is None else (nxt - t).total_seconds()
        if rate * span >= left:
            spent += left / rate
            return spent if spent <= within else math.inf
        left -= rate * span
        spent += span
        if spent > within or nxt is None:
            return math.inf
        t = nxt
    return math.inf


def starts(now: datetime, table: Timetable, hours: Hours | None) -> Iterator[datetime]:
    """Now, then every moment within one cycle where the limit or the upload hours change:
    the only start times that can do better than the one before them."""
    yield now
    t, end = now, now + CYCLE
    for _ in range(MAX_STARTS):
        changes = [c for c in (table.next_change(t),
                               hours.next_change(t) if hours is not None else None)
                   if c is not None and c > t]
        if not changes:
            return
        t = min(changes)
        if t > end:
            return
        yield t


def counted(measured: Sequence[Measured]) -> list[Measured]:
    """The measurements a verdict rests on: the latest two taken under one limit."""
    return [m for m in measured if m.steady and m.rate > 0][-2:]


def decide(size: int, measured: Sequence[Measured], window: float | None, table: Timetable,
           hours: Hours | None, now: datetime, concurrency: int = 1) -> Fit:
    """`measured`: the rates seen, oldest first; `window`: the seconds a fresh reservation
    grants (its expiry minus the time it was made). Nothing measured under one limit or no
    window seen yet: it fits (try it). "Never" only when the latest two both say so."""
    ms = counted(measured)
    if not ms or window is None or window <= 0 or size <= 0:
        return Fit(Verdict.FITS)
    f = _decide_one(size, ms[-1], window, table, hours, now, concurrency)
    if f.verdict is not Verdict.NEVER:
        return f
    if len(ms) < 2:
        rate = rate_in(ms[-1].capacity(concurrency), table.rate_at(now))
        return Fit(Verdict.MEASURE, reason=(
            f"waits to measure the upload rate again: at {format_rate(rate)} this "
            f"{size_text(size)} file takes {duration_text(size / rate)}, longer than the "
            f"{duration_text(window)} upload window, but one measurement says so, and a file "
            f"fails for that only when two do"))
    # The optimistic one of the two wins: a wrong "never" fails a file for good.
    other = _decide_one(size, ms[0], window, table, hours, now, concurrency)
    return f if other.verdict is Verdict.NEVER else other


def _decide_one(size: int, measured: Measured, window: float, table: Timetable,
                hours: Hours | None, now: datetime, concurrency: int) -> Fit:
    capacity = measured.capacity(concurrency)
    for t in starts(now, table, hours):
        if hours is not None and not hours.allows(t):
            continue
        if upload_seconds(size, t, capacity, table, window) <= window:
            if t == now:
                return Fit(Verdict.FITS)
            return Fit(Verdict.WAIT, t, _wait_reason(size, window, t, now, capacity, table))
    return Fit(Verdict.NEVER, reason=_never_reason(size, window, now, capacity, table))


def _wait_reason(size: int, window: float, at: datetime, now: datetime,
                 capacity: float | None, table: Timetable) -> str:
    rate = rate_in(capacity, table.rate_at(now))
    then = table.rate_at(at)
    limit = f"the bandwidth limit is {format_rate(then)}" if then != table.rate_at(now) \
        else "uploads may start"
    return (f"waits until {local_when(at, now)}, when {limit} and the upload fits its window: "
            f"at {format_rate(rate)} this {size_text(size)} file takes "
            f"{duration_text(size / rate)}, longer than the {duration_text(window)} "
            f"upload window")


def _never_reason(size: int, window: float, now: datetime, capacity: float | None,
                  table: Timetable) -> str:
    rate = rate_in(capacity, table.rate_at(now))
    limits = [limit for _, limit in table.slots]
    # The limit holds it back when some period has no limit or one above the link's rate.
    link_bound = capacity is not None and all(lim == 0 or lim >= capacity for lim in limits)
    advice = ("the connection itself is this slow: upload it over a faster connection, "
              "then retry it") if link_bound else (
        "raise [upload] bandwidth_limit, or let it upload in free hours (a timetable slot "
        "such as \"19:00,off\", with [upload] hours to match), then retry it")
    return (f"this {size_text(size)} file cannot be uploaded inside its upload window: at "
            f"{format_rate(rate)} it takes {duration_text(size / rate)}, but a reservation "
            f"lasts {duration_text(window)}, and no period of the bandwidth timetable or the "
            f"upload hours is fast enough; {advice}")


def size_text(size: float) -> str:
    for unit, n in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= n:
            return f"{size / n:.3g} {unit}"
    return f"{int(size)} bytes"


def duration_text(seconds: float) -> str:
    if seconds == math.inf:
        return "for ever"
    s = max(1, round(seconds))
    if s < 120:
        return f"{s} s"
    m = round(s / 60)
    return f"{m} min" if m < 60 else f"{m // 60} h {m % 60} min"
