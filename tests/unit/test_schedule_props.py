"""`[upload] hours` (schedule.py), searched with Hypothesis: any text parses or is refused with
a plain reason naming the key; parsed hours agree minute by minute with a plain model of the
ranges (a range crossing midnight belongs to the day it starts, Sunday night runs into
Monday); next_start / next_end / next_change land on the next flip of that model."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from daemon.config import ConfigError
from daemon.config.read import Table, hours_text
from daemon.work.schedule import DAY, DAYS, WEEK, Hours, local_when, parse_hours, waiting_reason

FRAGMENTS = ["0", "7", "07:00", "19:00", "24:00", "00:00", "23:59", "24:01", "99:00", "1:5",
             ":", "-", " - ", ",", ", ", " ", "Mon", "fri", "Sunday", "Mun", "Sat-Sun", "x",
             "\u0661\u0662:\u0660\u0660", "\t", "9" * 30]
texts = st.one_of(st.text(max_size=40),
                  st.lists(st.sampled_from(FRAGMENTS), max_size=10).map("".join))
moments = st.datetimes(datetime(2024, 1, 1), datetime(2030, 12, 31))
DAY_SPECS = ["", "Mon ", "mon-fri ", "Fri-Mon ", "Sat-Sun ", "Sunday ", "Wed - Thu ",
             "sun-sun "]


@given(texts)
def test_any_hours_text_parses_or_is_a_config_error_naming_the_key(text: str) -> None:
    t = Table({"hours": text}, "upload", Path("/etc/uplift/config.toml"))
    try:
        value = hours_text(t, "hours")
    except ConfigError as exc:
        assert str(exc).startswith(f"{t.where('hours')}: ")
        assert len(str(exc)) > len(t.where("hours")) + 10  # a reason follows
        return
    if not value:
        return  # blank: any time
    h = parse_hours(value)
    assert h.spans and str(h) == value
    for a, b in h.spans:
        assert 0 <= a < b <= WEEK
    # sorted and merged: neither overlapping nor touching
    assert all(b1 < a2 for (_, b1), (a2, _) in zip(h.spans, h.spans[1:], strict=False))
    assert parse_hours(str(h)) == h  # its text is its spelling


@st.composite
def hours_and_model(draw: st.DrawFn) -> tuple[Hours, list[bool]]:
    allowed = [False] * WEEK
    parts = []
    for _ in range(draw(st.integers(1, 4))):
        spec = draw(st.sampled_from(DAY_SPECS))
        start = draw(st.integers(0, DAY - 1))
        end = draw(st.integers(1, DAY).filter(lambda e, s=start: e != s))
        parts.append(f"{spec}{start // 60:02d}:{start % 60:02d}-{end // 60:02d}:{end % 60:02d}")
        words = spec.replace(" - ", "-").strip().split("-") if spec.strip() else []
        first = _day(words[0]) if words else 0
        last = _day(words[-1]) if words else 6
        length = end - start if end > start else end + DAY - start
        for i in range((last - first) % 7 + 1):
            d = (first + i) % 7
            for k in range(length):
                allowed[(d * DAY + start + k) % WEEK] = True
    return parse_hours(draw(st.sampled_from([", ", ",", " , "])).join(parts)), allowed


def _day(word: str) -> int:
    return [d.lower() for d in DAYS].index(word.strip().lower()[:3])


def minute_of_week(dt: datetime) -> int:
    return dt.weekday() * DAY + dt.hour * 60 + dt.minute


def floor(dt: datetime) -> datetime:
    return dt.replace(second=0, microsecond=0)


def ahead(allowed: list[bool], m: int, want: bool) -> int | None:
    """Minutes from m to the next minute whose allowed-ness is `want` (None: never)."""
    return next((k for k in range(1, WEEK + 1) if allowed[(m + k) % WEEK] is want), None)


@given(hours_and_model(), moments)
def test_allows_agrees_with_the_model_minute_by_minute(hm: tuple[Hours, list[bool]],
                                                       now: datetime) -> None:
    h, allowed = hm
    assert h.allows(now) is allowed[minute_of_week(now)]
    assert h.always is all(allowed)


@given(hours_and_model(), moments)
def test_next_start_and_end_land_on_the_next_flip(hm: tuple[Hours, list[bool]],
                                                  now: datetime) -> None:
    h, allowed = hm
    m = minute_of_week(now)
    start, end, change = h.next_start(now), h.next_end(now), h.next_change(now)
    if allowed[m]:
        assert start == now and change == end
        k = ahead(allowed, m, False)
        assert end == (None if k is None else floor(now) + timedelta(minutes=k))
    else:
        k = ahead(allowed, m, True)
        assert k is not None and start == floor(now) + timedelta(minutes=k) == change
        assert start > now and h.allows(start)
        assert end is not None and end > start and not h.allows(end)
        assert waiting_reason(h, now) == f"waits for upload hours, from {local_when(start, now)}"
    if change is not None:
        assert now < change <= now + timedelta(days=7)
        assert h.allows(change) is not h.allows(now)


@given(hours_and_model(), moments)
def test_a_range_wraps_at_midnight(hm: tuple[Hours, list[bool]], now: datetime) -> None:
    """An every-day range: the same answer today and tomorrow at the same time."""
    h, _ = hm
    if all(not text.strip()[:1].isalpha() for text in str(h).split(",")):
        assert h.allows(now) is h.allows(now + timedelta(days=1))
