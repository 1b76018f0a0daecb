"""`[upload] bandwidth_limit` (bandwidth.py), searched with Hypothesis: any text parses or is
refused with a plain reason naming the key; format/parse round trips; the rate in force is
piecewise constant over the week and wraps at midnight and at the week's end."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from daemon.config import ConfigError
from daemon.config.parse import _rate
from daemon.config.read import Table
from daemon.net.bandwidth import MAX_RATE, Timetable, format_rate, parse_limit, parse_rate
from daemon.work.schedule import DAY, DAYS, WEEK

MON = datetime(2024, 6, 3)  # a Monday
# Pieces of what people write, so random text often gets deep into the parser.
FRAGMENTS = ["0", "1", "9", "12", "08:00", "23:59", "24:00", "99:99", ".", ".5", ",", ":", ";",
             " ", "-", "/s", "bit/s", "bits", "bps", "B", "K", "Ki", "KiB", "KB", "M", "MiB",
             "MB", "G", "GiB", "T", "TB", "off", "OFF", "none", "Mon", "sun", "Friday", "x",
             "9" * 40, "e5", "\u0663", "\t", "\n"]
texts = st.one_of(st.text(max_size=40),
                  st.lists(st.sampled_from(FRAGMENTS), max_size=12).map("".join))
moments = st.datetimes(datetime(2024, 1, 1), datetime(2030, 12, 31))
# Real limits: a byte a second up to the cap (0 is "off").
rates = st.one_of(st.just(0.0), st.floats(1.0, float(MAX_RATE)))


def where(t: Table) -> str:
    return t.where("bandwidth_limit")


@given(texts)
@example("9" * 400)  # was float inf, taken as a limit
@example("0.0000001")  # 1e-7 B/s, and format_rate spelt it "1e-07B/s", which does not parse
def test_any_rate_text_parses_to_a_real_rate_or_is_refused_with_a_reason(text: str) -> None:
    try:
        rate = parse_rate(text)
    except ValueError as exc:
        assert repr(text) in str(exc)
    else:
        assert math.isfinite(rate) and (rate == 0 or 1 <= rate <= MAX_RATE)


@given(texts)
@example("9" * 400)
def test_any_limit_text_is_a_timetable_or_a_config_error_naming_the_key(text: str) -> None:
    t = Table({"bandwidth_limit": text}, "upload", Path("/etc/uplift/config.toml"))
    try:
        value = _rate(t, "bandwidth_limit")
    except ConfigError as exc:
        assert str(exc).startswith(f"{where(t)}: ") and len(str(exc)) > len(where(t)) + 10
        return
    table = parse_limit(value)
    assert table.slots, "a limit always has a rate in force"
    assert [m for m, _ in table.slots] == sorted({m for m, _ in table.slots})
    for minute, rate in table.slots:
        assert 0 <= minute < WEEK
        assert math.isfinite(rate) and (rate == 0 or 1 <= rate <= MAX_RATE)


@given(rates)
def test_format_then_parse_gives_the_rate_back(rate: float) -> None:
    back = parse_rate(format_rate(rate))
    assert back == pytest.approx(rate, rel=1e-5)
    assert parse_limit(format_rate(rate)).rate_at(MON) == back


@st.composite
def timetables(draw: st.DrawFn) -> tuple[str, dict[int, float], bool]:
    """A timetable's text, the model of it (minute of the week -> rate) and whether every slot
    applies to every day."""
    keys = draw(st.lists(st.tuples(st.one_of(st.none(), st.integers(0, 6)),
                                   st.integers(0, DAY - 1)),
                         min_size=1, max_size=8, unique=True))
    tokens, daily, weekly = [], {}, {}
    for day, minute in keys:
        rate_text = draw(st.one_of(st.just("off"), rates.map(format_rate)))
        rate = parse_rate(rate_text)
        hhmm = f"{minute // 60:02d}:{minute % 60:02d}"
        if day is None:
            tokens.append(f"{hhmm},{rate_text}")
            daily.update({d * DAY + minute: rate for d in range(7)})
        else:
            tokens.append(f"{DAYS[day]}-{hhmm},{rate_text}")
            weekly[day * DAY + minute] = rate
    text = "".join(tok + draw(st.sampled_from([" ", ";", "  ", " ; "])) for tok in tokens)
    return text.strip(" ;"), daily | weekly, not weekly  # a weekday slot wins at its minute


def minute_of_week(dt: datetime) -> int:
    return dt.weekday() * DAY + dt.hour * 60 + dt.minute


def model_rate(model: dict[int, float], m: int) -> float:
    """The last slot at or before m; before the week's first slot, the week's last."""
    before = [k for k in model if k <= m]
    return model[max(before) if before else max(model)]


@given(timetables(), moments)
def test_the_rate_in_force_is_the_last_slot_before_it_wrapping_at_the_week(
        table_model: tuple[str, dict[int, float], bool], now: datetime) -> None:
    text, model, _ = table_model
    table = parse_limit(text)
    assert table.rate_at(now) == model_rate(model, minute_of_week(now))


@given(timetables(), moments)
def test_every_day_slots_wrap_at_midnight(table_model: tuple[str, dict[int, float], bool],
                                          now: datetime) -> None:
    text, _, every_day = table_model
    table = parse_limit(text)
    if every_day:
        assert table.rate_at(now) == table.rate_at(now + timedelta(days=1))
    midnight = datetime.combine(now.date(), datetime.min.time())
    if every_day and not any(m == 0 for m, _ in table.slots):
        # the night runs on from yesterday's last slot
        assert table.rate_at(midnight) == table.rate_at(midnight - timedelta(minutes=1))


@given(timetables(), moments, st.floats(0.0, 1.0))
def test_the_rate_is_constant_until_next_change_and_differs_there(
        table_model: tuple[str, dict[int, float], bool], now: datetime, frac: float) -> None:
    table: Timetable = parse_limit(table_model[0])
    rate = table.rate_at(now)
    change = table.next_change(now)
    if change is None:
        assert table.constant
        assert all(r == rate for _, r in table.slots)
        return
    assert now < change <= now + timedelta(days=7)
    assert change.second == 0 and change.microsecond == 0
    assert table.rate_at(change) != rate
    between = now + (change - now) * frac
    if between < change:
        assert table.rate_at(between) == rate
    assert table.rate_at(change - timedelta(minutes=1)) == rate  # the minute before it
