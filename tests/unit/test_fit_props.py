"""The fit decision (work/fit.py) and the lapse bound (errors.after_lapse), searched with
Hypothesis: random sizes, rates, windows, timetables, upload hours and moments."""

from __future__ import annotations

import dataclasses
import itertools
import math
from datetime import datetime, timedelta

from hypothesis import assume, given
from hypothesis import strategies as st

from daemon.errors import (
    LAPSE_BACKOFF,
    MAX_DELAY,
    MAX_LAPSES,
    MAX_LAPSES_IN_A_ROW,
    Kind,
    Outcome,
    TransferError,
    Where,
    after_lapse,
)
from daemon.net.bandwidth import Timetable, parse_limit
from daemon.work import fit
from daemon.work.schedule import WEEK, Hours, local_when, parse_hours

KiB, MiB = 1024, 1024**2
sizes = st.integers(1, 20 * 1024 * MiB)
rates = st.floats(1 * KiB, 200 * MiB)
limits = st.one_of(st.just(0.0), rates)
windows = st.floats(1.0, 4 * 3600.0)
moments = st.datetimes(datetime(2024, 1, 1), datetime(2031, 1, 1))
measures = st.builds(fit.Measured, rates, limits)
# Some taken across a limit change (a timetable switch, a SIGUSR2 toggle): not steady.
any_measures = st.builds(fit.Measured, rates, limits, st.booleans())


@st.composite
def timetables(draw: st.DrawFn) -> Timetable:
    minutes = draw(st.lists(st.integers(0, WEEK - 1), min_size=1, max_size=8, unique=True))
    return Timetable(tuple(sorted((m, draw(limits)) for m in minutes)))


@st.composite
def upload_hours(draw: st.DrawFn) -> Hours:
    parts = []
    for _ in range(draw(st.integers(1, 3))):
        a, b = draw(st.integers(0, 1439)), draw(st.integers(0, 1439))
        assume(a != b)
        day = draw(st.sampled_from(["", "Mon ", "Sat-Sun ", "Fri-Mon "]))
        parts.append(f"{day}{a // 60:02d}:{a % 60:02d}-{b // 60:02d}:{b % 60:02d}")
    return parse_hours(", ".join(parts))


def _periods(table: Timetable) -> list[tuple[float, float]]:
    """(limit, length in seconds) of each slot of the week."""
    slots = table.slots
    out = []
    for i, (start, limit) in enumerate(slots):
        end = slots[i + 1][0] if i + 1 < len(slots) else slots[0][0] + WEEK
        out.append((limit, math.inf if len(slots) == 1 else (end - start) * 60.0))
    return out


@given(sizes, measures, windows, timetables(), moments, st.integers(1, 8))
def test_a_file_that_fits_even_at_the_slowest_rate_is_never_held(
        size: int, m: fit.Measured, window: float, table: Timetable, now: datetime,
        concurrency: int) -> None:
    cap = m.capacity(concurrency)
    slowest = min(fit.rate_in(cap, limit) for limit, _ in _periods(table))
    assume(size / slowest <= window * 0.999)
    f = fit.decide(size, [m, m], window, table, None, now, concurrency)
    assert f.verdict is fit.Verdict.FITS


@given(sizes, measures, windows, timetables(), moments)
def test_a_file_that_fits_the_current_period_is_never_held(
        size: int, m: fit.Measured, window: float, table: Timetable, now: datetime) -> None:
    rate = fit.rate_in(m.capacity(), table.rate_at(now))
    change = table.next_change(now)
    left = math.inf if change is None else (change - now).total_seconds()
    assume(size / rate <= min(window, left) * 0.999)
    assert fit.decide(size, [m, m], window, table, None, now).verdict is fit.Verdict.FITS


@given(sizes, measures, windows, timetables(), st.one_of(st.none(), upload_hours()), moments)
def test_a_wait_is_in_the_future_within_a_cycle_and_inside_upload_hours(
        size: int, m: fit.Measured, window: float, table: Timetable, hours: Hours | None,
        now: datetime) -> None:
    f = fit.decide(size, [m, m], window, table, hours, now)
    if f.verdict is fit.Verdict.WAIT:
        assert f.at is not None and now < f.at <= now + timedelta(days=7)
        assert hours is None or hours.allows(f.at)
        assert f.reason.startswith(f"waits until {local_when(f.at, now)}")
        # ... and at that time it does fit: asking then says so.
        assert fit.decide(size, [m, m], window, table, hours, f.at).verdict is fit.Verdict.FITS
    elif f.verdict is fit.Verdict.NEVER:
        assert f.at is None and "cannot be uploaded inside its upload window" in f.reason
        assert fit.size_text(size) in f.reason and fit.duration_text(window) in f.reason


@given(sizes, measures, windows, timetables(), moments)
def test_failed_only_if_no_period_fits(size: int, m: fit.Measured, window: float,
                                       table: Timetable, now: datetime) -> None:
    cap = m.capacity()
    fits_somewhere = any(size / fit.rate_in(cap, limit) <= min(window, length) * 0.999
                         for limit, length in _periods(table))
    assume(fits_somewhere)
    assert fit.decide(size, [m, m], window, table, None, now).verdict is not fit.Verdict.NEVER


@given(sizes, st.one_of(st.none(), measures), st.one_of(st.none(), windows), timetables(),
       moments)
def test_nothing_measured_or_no_window_seen_means_try(
        size: int, m: fit.Measured | None, window: float | None, table: Timetable,
        now: datetime) -> None:
    assume(m is None or window is None)
    ms = [] if m is None else [m, m]
    assert fit.decide(size, ms, window, table, None, now).verdict is fit.Verdict.FITS



@given(sizes, st.lists(any_measures, max_size=5), windows, timetables(),
       st.one_of(st.none(), upload_hours()), moments)
def test_a_measurement_across_a_limit_change_never_counts(
        size: int, ms: list[fit.Measured], window: float, table: Timetable,
        hours: Hours | None, now: datetime) -> None:
    """Issue 28.7: an upload spanning the 18:00 switch to "off" (or a toggle) averaged two
    limits and is recorded with the last; the verdict is the same without it."""
    steady = [m for m in ms if m.steady]
    assert fit.decide(size, ms, window, table, hours, now) == \
        fit.decide(size, steady, window, table, hours, now)
    if not steady:
        assert fit.decide(size, ms, window, table, hours, now).verdict is fit.Verdict.FITS


@given(sizes, any_measures, st.lists(any_measures.filter(lambda m: not m.steady), max_size=3),
       windows, timetables(), st.one_of(st.none(), upload_hours()), moments)
def test_one_measurement_never_fails_a_file(
        size: int, m: fit.Measured, void: list[fit.Measured], window: float, table: Timetable,
        hours: Hours | None, now: datetime) -> None:
    f = fit.decide(size, [*void, m, *void], window, table, hours, now)
    assert f.verdict is not fit.Verdict.NEVER
    if m.steady and fit.decide(size, [m, m], window, table, hours, now).verdict \
            is fit.Verdict.NEVER:
        assert f.verdict is fit.Verdict.MEASURE and f.at is None
        assert f.reason.startswith("waits to measure the upload rate again")
        assert fit.size_text(size) in f.reason and fit.duration_text(window) in f.reason


@given(sizes, measures, measures, windows, timetables(), st.one_of(st.none(), upload_hours()),
       moments)
def test_never_only_when_both_measurements_say_so(
        size: int, a: fit.Measured, b: fit.Measured, window: float, table: Timetable,
        hours: Hours | None, now: datetime) -> None:
    def never(ms: list[fit.Measured]) -> bool:
        return fit.decide(size, ms, window, table, hours, now).verdict is fit.Verdict.NEVER
    assert never([a, b]) == (never([a, a]) and never([b, b]))
    # Only the latest two count: an older one neither fails a file nor saves it.
    assert never([b, a, b]) == never([a, b])


def test_a_steady_measurement_after_a_void_one_is_what_counts() -> None:
    """The docs' example: 2 GiB uploaded across 18:00 (512 KiB/s, then off) averaged a rate
    that would fail every 3 GiB file; it is void, so they are tried."""
    table = parse_limit("08:00,512KiB/s 12:00,10MiB/s 18:00,off")
    now = datetime(2026, 5, 13, 19, 30)  # a Wednesday, in the free period
    spanning = fit.Measured(2 * 1024 * MiB / 3600, 0.0, steady=False)
    f = fit.decide(3 * 1024 * MiB, [spanning], 1800.0, table, None, now)
    assert f.verdict is fit.Verdict.FITS
    assert fit.decide(3 * 1024 * MiB, [spanning, dataclasses.replace(spanning, steady=True)],
                      1800.0, table, None, now).verdict is fit.Verdict.MEASURE

def test_it_waits_for_the_free_period_inside_upload_hours() -> None:
    table = parse_limit("08:00,50KiB/s 18:00,off")
    hours = parse_hours("19:00-07:00, 12:00-13:00")
    now = datetime(2026, 5, 13, 12, 30)  # a Wednesday, inside the noon hour, 50 KiB/s
    f = fit.decide(300 * MiB, [fit.Measured(50 * KiB, 50 * KiB)] * 2, 1800.0, table, hours, now)
    assert f.verdict is fit.Verdict.WAIT and f.at == datetime(2026, 5, 13, 19, 0)
    assert f.reason.startswith("waits until 19:00, when the bandwidth limit is off")
    assert "300 MiB" in f.reason and "1 h 42 min" in f.reason and "30 min" in f.reason


def test_never_says_what_to_do() -> None:
    now = datetime(2026, 5, 13, 12, 30)
    limited = fit.decide(300 * MiB, [fit.Measured(50 * KiB, 50 * KiB)] * 2, 1800.0,
                         parse_limit("50KiB/s"), None, now)
    assert limited.verdict is fit.Verdict.NEVER
    assert "raise [upload] bandwidth_limit" in limited.reason and "free hours" in limited.reason
    slow_link = fit.decide(300 * MiB, [fit.Measured(50 * KiB, 0.0)] * 2, 1800.0, parse_limit("0"),
                           None, now)
    assert slow_link.verdict is fit.Verdict.NEVER
    assert "faster connection" in slow_link.reason


LAPSE = TransferError(Where.STORAGE, Kind.HTTP, "HTTP 403: AccessDenied: Policy expired.",
                      status=403, code="AccessDenied")


@given(st.integers(1, 50), st.integers(1, 10), st.floats(0.0, 1.0))
def test_lapses_are_bounded_with_growing_backoff(lapses: int, in_claim: int,
                                                 jitter: float) -> None:
    d = after_lapse(lapses, in_claim, LAPSE, lambda: jitter)
    if lapses >= MAX_LAPSES_IN_A_ROW:
        assert d.outcome is Outcome.FAIL and f"ran out {lapses} times" in d.reason
    elif in_claim < MAX_LAPSES:
        assert d.outcome is Outcome.RERESERVE
    else:
        assert d.outcome is Outcome.RETRY and 0 < d.delay <= MAX_DELAY
        rounds = max(1, lapses // MAX_LAPSES)
        assert d.delay >= min(MAX_DELAY, LAPSE_BACKOFF * 2 ** (rounds - 1)) / 2


@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=100))
def test_a_window_that_always_lapses_ends_failed_after_a_bounded_number(
        jitters: list[float]) -> None:
    """Claim after claim, every window lapses: captures created stay bounded; the waits
    between rounds never shrink."""
    lapses, created, delays = 0, 0, []
    for jitter in jitters * 10:
        in_claim = 0
        while True:
            created += 1
            lapses += 1
            in_claim += 1
            d = after_lapse(lapses, in_claim, LAPSE, lambda j=jitter: j)
            if d.outcome is not Outcome.RERESERVE:
                break
        if d.outcome is Outcome.FAIL:
            break
        delays.append(d.delay)
    assert d.outcome is Outcome.FAIL and created == MAX_LAPSES_IN_A_ROW
    assert all(b >= a / 2 for a, b in itertools.pairwise(delays))
