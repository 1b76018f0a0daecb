"""What a person types as a pause (`--for 1h30m`) and the times shown back (issue 30 item 7):
no input is a traceback, no pause is longer than 366 days, and a time that is not today always
carries its date."""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from daemon import timeutil
from daemon.timeutil import MAX_PAUSE, local_clock

NOW = datetime(2026, 3, 10, 21, 38, 29).timestamp()  # local time, as the workstation shows it
DURATIONS = st.one_of(
    st.text(),
    st.from_regex(r"\A *[0-9]{0,30}[hH]?[0-9]{0,30}[mM]?[0-9]{0,30}[sS]? *\Z"),
)
TIMES = st.one_of(st.floats(), st.floats(min_value=-1e11, max_value=4e11),
                  st.integers(min_value=-(2**70), max_value=2**70).map(float))


@given(DURATIONS, st.floats(min_value=0, max_value=4e9))
@example("99999999h", NOW)
@example("9" * 5000 + "s", NOW)
@example("0", NOW)
@example("\u0661h", NOW)  # an Arabic-Indic digit: int() would take it
def test_a_duration_is_a_pause_of_at_most_366_days_or_one_plain_refusal(text: str,
                                                                        now: float) -> None:
    try:
        until = timeutil.until(None, text, now)
    except ValueError as exc:
        assert "--for" in str(exc) and "\n" not in str(exc)
        return
    assert until is not None and now < until <= now + MAX_PAUSE


@pytest.mark.parametrize(("text", "seconds"), [("90m", 5400), ("2h", 7200), ("1h30m", 5400),
                                               ("45s", 45), (" 1H ", 3600), ("8784h", 366 * 86400)])
def test_the_durations_people_type(text: str, seconds: int) -> None:
    assert timeutil.until(None, text, NOW) == NOW + seconds


@pytest.mark.parametrize("text", ["8785h", "99999999h", "0s", "0", "", "1d", "h", "-5m"])
def test_absurd_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="--for"):
        timeutil.until(None, text, NOW)


def test_a_pause_past_midnight_carries_its_date() -> None:
    """`pause --for 25h` at 21:38 once said "until 22:38:29": today's 22:38 was meant?"""
    assert local_clock(NOW + 25 * 3600, NOW) == "2026-03-11 22:38:29"
    assert local_clock(NOW + 600, NOW) == "21:48:29"


@given(TIMES, TIMES)
@example(NOW + 25 * 3600, NOW)
@example(99999999 * 3600.0 + NOW, NOW)
@example(math.nan, NOW)
@example(math.inf, -math.inf)
def test_a_time_shown_is_never_a_traceback_and_not_today_carries_the_date(ts: float,
                                                                         now: float) -> None:
    shown = local_clock(ts, now)
    assert shown and "\n" not in shown
    try:
        day, today = datetime.fromtimestamp(ts), datetime.fromtimestamp(now)
    except (OverflowError, ValueError, OSError):
        return  # out of any calendar: shown some plain way, checked above
    if day.date() == today.date():
        assert shown == day.strftime("%H:%M:%S")
    else:
        assert re.fullmatch(r"-?\d{4,}-\d\d-\d\d \d\d:\d\d:\d\d", shown), shown
        assert shown.endswith(day.strftime("%H:%M:%S")) and day.isoformat()[:10] in shown


def test_tomorrow_and_yesterday_differ_from_today() -> None:
    day = timedelta(days=1).total_seconds()
    assert local_clock(NOW - day, NOW).startswith("2026-03-09 ")
    assert local_clock(NOW + day, NOW).startswith("2026-03-11 ")
