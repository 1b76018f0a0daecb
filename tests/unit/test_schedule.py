from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from daemon.work.schedule import parse_hours, waiting_reason

# 2024-06-03 is a Monday.
MON = datetime(2024, 6, 3)


def at(day: int, hh: int, mm: int = 0, ss: int = 0) -> datetime:
    return MON + timedelta(days=day, hours=hh, minutes=mm, seconds=ss)


def test_evening_range_crosses_midnight() -> None:
    h = parse_hours("19:00-07:00")
    assert h.allows(at(0, 19)) and h.allows(at(0, 23, 59)) and h.allows(at(1, 6, 59, 59))
    assert not h.allows(at(1, 7)) and not h.allows(at(0, 18, 59, 59)) and not h.allows(at(0, 12))
    assert h.allows(at(0, 3))  # Sunday's evening range reaches Monday morning


def test_weekday_prefixes_and_several_ranges() -> None:
    h = parse_hours("Mon-Fri 19:00-07:00, Sat-Sun 00:00-24:00")
    assert not h.allows(at(2, 12))  # Wednesday noon
    assert h.allows(at(5, 12)) and h.allows(at(6, 23, 59))  # the weekend, all day
    assert h.allows(at(4, 23))  # Friday night
    # Friday's range runs into Saturday; Thursday's into Friday morning.
    assert h.allows(at(4, 6)) and not h.allows(at(4, 7, 30))


def test_range_belongs_to_the_day_it_starts() -> None:
    h = parse_hours("Fri 22:00-02:00")
    assert h.allows(at(4, 23)) and h.allows(at(5, 1, 59))
    assert not h.allows(at(4, 1))  # Thursday night's range does not exist
    assert not h.allows(at(5, 23))


def test_day_range_wraps_over_the_weekend() -> None:
    h = parse_hours("Fri-Mon 10:00-12:00")
    assert [h.allows(at(d, 11)) for d in range(7)] == [True, False, False, False, True, True,
                                                        True]


def test_sunday_night_into_monday() -> None:
    h = parse_hours("Sun 20:00-06:00")
    assert h.allows(at(6, 21)) and h.allows(at(7, 5)) and not h.allows(at(7, 6))
    assert h.next_end(at(6, 21)) == at(7, 6)  # one window, though stored as two spans
    assert h.next_start(at(2, 12)) == at(6, 20)


@pytest.mark.parametrize(("text", "why"), [
    ("", "no hours"),
    ("19:00", "not a range"),
    ("25:00-07:00", "not a time of day"),
    ("19:00-24:01", "not a time of day"),
    ("24:00-07:00", "not a time of day"),
    ("19:60-07:00", "not a time of day"),
    ("Mon-Fry 19:00-07:00", "'Fry' is not a weekday"),
    ("10:00-10:00", "is empty"),
    ("19:00-07:00,", "not a range"),
])
def test_refuses_with_a_plain_reason(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_hours(text)


def test_next_start_and_end() -> None:
    h = parse_hours("Mon-Fri 19:00-07:00")
    assert h.next_start(at(0, 12, 30, 15)) == at(0, 19)
    assert h.next_start(at(0, 20)) == at(0, 20)  # inside: now
    assert h.next_end(at(0, 20)) == at(1, 7)
    assert h.next_end(at(0, 12)) == at(1, 7)  # outside: the next window's end
    # Saturday: next window is Monday evening.
    assert h.next_start(at(5, 12)) == at(7, 19)
    assert h.next_change(at(0, 12)) == at(0, 19) and h.next_change(at(0, 20)) == at(1, 7)


def test_whole_week_never_ends() -> None:
    h = parse_hours("00:00-24:00")
    assert h.always and h.next_end(at(3, 3)) is None and h.next_start(at(3, 3)) == at(3, 3)


def test_waiting_reason_names_the_start() -> None:
    h = parse_hours("19:00-07:00")
    assert waiting_reason(h, at(0, 12)) == "waits for upload hours, from 19:00"
    assert waiting_reason(h, at(0, 20)) == ""
    weekend = parse_hours("Sat-Sun 00:00-24:00")
    assert waiting_reason(weekend, at(0, 12)) == "waits for upload hours, from Sat 00:00"


def test_wall_clock_across_dst() -> None:
    # Europe/Berlin springs forward on 2024-03-31 02:00 -> 03:00.
    tz = ZoneInfo("Europe/Berlin")
    h = parse_hours("19:00-07:00")
    start = h.next_start(datetime(2024, 3, 31, 12, 0, tzinfo=tz))
    assert start == datetime(2024, 3, 31, 19, 0, tzinfo=tz)
    assert start is not None and start.utcoffset() == timedelta(hours=2)
    assert h.next_end(datetime(2024, 3, 30, 23, 0, tzinfo=tz)) == \
        datetime(2024, 3, 31, 7, 0, tzinfo=tz)
