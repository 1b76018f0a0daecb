"""Issue 33: the station's pure parts. `[station] low_disk` parsed ("24MiB", "10%", "off"),
the low-disk decision, and the priority decisions (never raise a priority the daemon was
given)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemon.config import ConfigError
from daemon.config.parse import parse
from daemon.station import priority, space
from daemon.station.space import DEFAULT, OFF, Threshold, is_low, parse_threshold

GiB = 1024**3
UNITS = {"KiB": 1024, "MiB": 1024**2, "GiB": GiB, "K": 1024, "M": 1024**2, "G": GiB,
         "KB": 1000, "MB": 1000**2, "GB": 1000**3, "": 1}


def test_the_forms_the_issue_names() -> None:
    assert parse_threshold("24MiB") == Threshold(size=24 * 1024**2)
    assert parse_threshold("2GiB") == Threshold(size=2 * GiB)
    assert parse_threshold("10%") == Threshold(share=0.10)
    assert parse_threshold("off") == parse_threshold("OFF") == OFF
    assert parse_threshold("") == DEFAULT


@given(st.integers(1, 10**6), st.sampled_from(sorted(UNITS)), st.sampled_from(["", " "]))
def test_a_size_is_its_number_times_its_unit(n: int, unit: str, gap: str) -> None:
    assert parse_threshold(f"{n}{gap}{unit}") == Threshold(size=n * UNITS[unit])


@given(st.integers(1, 99))
def test_a_share_is_a_hundredth_of_its_percent(n: int) -> None:
    t = parse_threshold(f"{n}%")
    assert t.share == pytest.approx(n / 100) and t.size is None


@pytest.mark.parametrize("text", ["0", "0MiB", "0%", "100%", "150%", "-5MiB", "ten", "5 parsecs",
                                  "5MiB/s", "%", "1e9"])
def test_nonsense_is_refused_with_the_forms_named(text: str) -> None:
    with pytest.raises(ValueError, match=r"off|%"):
        parse_threshold(text)


def test_the_config_refuses_a_bad_value_naming_the_key(tmp_path: Path) -> None:
    source, watch = tmp_path / "config.toml", [{"path": str(tmp_path)}]
    with pytest.raises(ConfigError, match=r"\[station\] low_disk"):
        parse({"watch": watch, "station": {"low_disk": "lots"}}, source)
    with pytest.raises(ConfigError, match=r"\[station\] priority"):
        parse({"watch": watch, "station": {"priority": "urgent"}}, source)
    cfg = parse({"watch": watch}, source)
    assert (cfg.station.priority, cfg.station.low_disk) == ("background", "")


@given(st.text("0123456789.", min_size=1, max_size=420), st.sampled_from(sorted(UNITS)))
def test_any_number_is_a_threshold_or_a_plain_reason(digits: str, unit: str) -> None:
    """A number too large for a float (400 digits is inf): a plain ValueError, never the
    OverflowError that int(inf) raises, which reached the admin as a traceback."""
    try:
        t = parse_threshold(f"{digits}{unit}")
    except ValueError as exc:
        assert str(exc)
    else:
        assert t.size is not None and 0 < t.size <= space.MAX_SIZE


@pytest.mark.parametrize("section,key", [("station", "low_disk"), ("retention", "min_free")])
def test_a_size_larger_than_any_disk_is_refused_naming_the_key(
        tmp_path: Path, section: str, key: str) -> None:
    source, watch = tmp_path / "config.toml", [{"path": str(tmp_path)}]
    with pytest.raises(ConfigError, match=rf"\[{section}\] {key}: .*larger than"):
        parse({"watch": watch, section: {key: "9" * 400 + "GiB"}}, source)


@given(st.integers(0, 2**50), st.integers(1, 2**50))
def test_the_default_is_the_larger_of_5_percent_and_2_gib(free: int, total: int) -> None:
    assert is_low(free, total, DEFAULT) == (free < max(2 * GiB, int(total * 0.05)))


@given(st.integers(0, 2**50), st.integers(1, 2**50), st.booleans())
def test_off_is_never_low(free: int, total: int, was: bool) -> None:
    assert not is_low(free, total, OFF, was)


@given(st.integers(0, 2**40), st.integers(0, 2**40), st.integers(1, 2**40), st.booleans())
def test_less_free_is_never_less_low(a: int, b: int, limit: int, was: bool) -> None:
    t = Threshold(size=limit)
    low_free, high_free = sorted((a, b))
    assert is_low(low_free, 2**41, t, was) or not is_low(high_free, 2**41, t, was)


@given(st.integers(1, 2**40), st.floats(0, 2))
def test_once_low_it_clears_only_above_the_limit(limit: int, k: float) -> None:
    free = int(limit * k)
    t = Threshold(size=limit)
    assert is_low(free, 2**41, t, was_low=False) == (free < limit)
    if free >= limit * space.RECOVER:
        assert not is_low(free, 2**41, t, was_low=True)
    if free < limit:
        assert is_low(free, 2**41, t, was_low=True)


def test_the_notice_is_stable_and_names_each_low_path() -> None:
    assert space.message({}) is None
    text = space.message({"/srv/b": 24 << 20, "/srv/a": 2 * GiB})
    assert text is not None and text.index("/srv/a") < text.index("/srv/b")
    assert "24.0 MiB" in text and "2.0 GiB" in text


@given(st.integers(-20, 19))
def test_nice_is_raised_to_10_never_lowered(current: int) -> None:
    target = priority.nice_to_set(current)
    assert target == (None if current >= 10 else 10)


@given(st.integers(0, 3), st.integers(0, 7))
def test_io_becomes_best_effort_7_unless_already_as_low(klass: int, level: int) -> None:
    value = (klass << priority.IOPRIO_CLASS_SHIFT) | level
    already = klass == priority.IOPRIO_CLASS_IDLE or (klass == priority.IOPRIO_CLASS_BE
                                                      and level == 7)
    assert priority.io_to_set(value) == (None if already else priority.BACKGROUND_IO)


# ---- how soon the next look comes (space.soon) ---------------------------------------------

sizes = st.integers(0, 2**50)


@given(sizes, sizes, st.one_of(st.none(), sizes))
def test_a_new_or_low_file_system_is_looked_at_again_soon(free: int, total: int,
                                                          limit: int | None) -> None:
    assert space.soon(None, free, total, limit, low=False)
    assert space.soon(free, free, total, limit, low=True)


@given(sizes, sizes, sizes, sizes)
def test_near_its_limit_a_file_system_is_looked_at_soon_whatever_moved(
        before: int, free: int, total: int, limit: int) -> None:
    if free < space.NEAR * limit:
        assert space.soon(before, free, total, limit, low=False)


@given(sizes, st.integers(0, 2**40), sizes, st.one_of(st.none(), sizes), st.booleans())
def test_free_space_that_moves_by_a_recording_s_worth_brings_the_next_look_soon(
        before: int, moved: int, total: int, limit: int | None, down: bool) -> None:
    free = max(0, before - moved) if down else before + moved
    if abs(free - before) >= space.MOVED:
        assert space.soon(before, free, total, limit, low=False)


@given(st.one_of(st.none(), sizes), sizes, sizes, st.integers(1, 2**50))
def test_a_disk_left_for_the_slow_look_cannot_reach_its_limit_before_it(
        before: int | None, free: int, total: int, limit: int) -> None:
    """Whatever moved before, a recording that starts now at FILLS does not bring a disk left
    for the slow look under its limit before that look (a small limit: NEAR times it is not
    enough)."""
    if not space.soon(before, free, total, limit, low=False):
        assert free - space.SLOW * space.FILLS >= limit


@given(st.integers(10 * GiB, 2**50), st.integers(0, 2**50))
def test_a_quiet_disk_far_from_its_limit_waits_for_the_slow_look(free: int, total: int) -> None:
    """Nothing written since the last look, free far above the limit: the SLOW pace. Between
    two such looks a disk that starts filling is caught by the next (its free space moved)."""
    limit = free // (space.NEAR + 1)
    assert not space.soon(free, free, total, limit, low=False)
    assert not space.soon(free, free, total, None, low=False)
