from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta

import pytest

from daemon.net.bandwidth import Limiter, apply_timetable, parse_limit, parse_rate


@pytest.mark.parametrize(("text", "rate"), [
    ("20MB/s", 20e6), ("500KiB/s", 512_000), ("0", 0), ("1.5 GB/s", 1.5e9), ("300", 300),
    ("2mb", 2e6),
])
def test_parse_rate(text: str, rate: float) -> None:
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["fast", "20 MB per second", "-1MB/s", "5 parsecs/s"])
def test_parse_rate_refuses_nonsense(text: str) -> None:
    with pytest.raises(ValueError, match="is not a rate"):
        parse_rate(text)


def test_limiter_holds_the_average_rate() -> None:
    now = [0.0]
    limiter = Limiter(1_000_000, clock=lambda: now[0],
                      sleep=lambda s: now.__setitem__(0, now[0] + s))
    for _ in range(40):
        limiter.take(250_000)
    # 10 MB at 1 MB/s: about 10 s, less the initial quarter-second burst.
    assert 9.7 <= now[0] <= 10.0


def test_unlimited_never_sleeps() -> None:
    limiter = Limiter(0, sleep=lambda s: pytest.fail("slept"))
    limiter.take(10**9)


# --- rclone's units and timetable (issue 14) ---

KiB, MiB = 1024, 1024**2
# 2024-06-03 is a Monday.
MON = datetime(2024, 6, 3)


def at(day: int, hh: int, mm: int = 0) -> datetime:
    return MON + timedelta(days=day, hours=hh, minutes=mm)


@pytest.mark.parametrize(("text", "rate"), [
    ("512KiB/s", 512 * KiB), ("10M", 10 * MiB), ("10Mi", 10 * MiB), ("1G", 1024**3),
    ("512K", 512 * KiB), ("100B", 100), ("0.5M", MiB / 2), ("off", 0), ("OFF", 0),
    ("8Mbit/s", 1e6), ("8 Mbps", 1e6), ("800kbit/s", 100_000), ("16bit/s", 2),
    ("10M:100K", 10 * MiB),  # rclone's upload:download pair
])
def test_parse_rate_rclone_units(text: str, rate: float) -> None:
    assert parse_rate(text) == rate


def test_plain_limit_is_a_constant_timetable() -> None:
    for text, rate in [("0", 0), ("20MB/s", 20e6), ("off", 0), ("512KiB/s", 512 * KiB),
                       ("500 KiB/s", 500 * KiB), ("1.5 GB/s", 1.5e9), ("300", 300)]:
        table = parse_limit(text)
        assert table.rate_at(at(2, 13)) == rate and table.next_change(at(2, 13)) is None


def test_daily_timetable() -> None:
    table = parse_limit("08:00,512KiB/s 12:00,10MiB/s 18:00,off")
    assert table.rate_at(at(0, 7, 59)) == 0  # before the first slot: yesterday's last (off)
    assert table.rate_at(at(0, 8)) == 512 * KiB
    assert table.rate_at(at(3, 12, 30)) == 10 * MiB
    assert table.rate_at(at(6, 23)) == 0
    assert table.next_change(at(0, 9)) == at(0, 12)
    assert table.next_change(at(0, 19)) == at(1, 8)
    assert table.min_rate == 512 * KiB


def test_weekday_timetable_as_rclone_writes_it() -> None:
    table = parse_limit("Mon-00:00,512K Fri-23:59,10M Sat-10:00,1M Sun-20:00,off")
    assert table.rate_at(at(2, 12)) == 512 * KiB
    assert table.rate_at(at(4, 23, 59)) == 10 * MiB
    assert table.rate_at(at(5, 9)) == 10 * MiB and table.rate_at(at(5, 10)) == MiB
    assert table.rate_at(at(6, 21)) == 0
    assert table.next_change(at(6, 21)) == at(7, 0)  # wraps into next Monday
    assert table.next_change(at(1, 12)) == at(4, 23, 59)


def test_slots_without_weekday_cover_every_day() -> None:
    # rclone: equivalent to Mon-12:00,1M Tue-12:00,1M ... plus Mon-00:00 and Sun-20:00.
    table = parse_limit("Mon-00:00,512K 12:00,1M;Sun-20:00,off")
    assert table.rate_at(at(0, 11)) == 512 * KiB and table.rate_at(at(0, 13)) == MiB
    assert table.rate_at(at(3, 11)) == MiB  # Thursday morning: Wednesday's 12:00 slot
    assert table.rate_at(at(6, 19)) == MiB and table.rate_at(at(6, 21)) == 0


def test_same_rate_slots_are_not_a_change() -> None:
    table = parse_limit("08:00,1M 12:00,1M 18:00,off")
    assert table.next_change(at(0, 9)) == at(0, 18)


@pytest.mark.parametrize(("text", "why"), [
    ("", "no bandwidth limit"),
    ("fast", "is not a rate"),
    ("08:00,fast", "is not a rate"),
    ("25:00,1M", "not a time of day"),
    ("Mun-08:00,1M", "not a weekday"),
    ("08:00 1M", "is not a rate"),
    ("08:00,1M 12:00", "not a timetable slot"),
    ("08:00,512", "write a unit"),  # rclone would read KiB/s, a plain rate here bytes
    ("08:00,1M 08:00,2M", "given twice"),
])
def test_parse_limit_refuses_with_a_reason(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_limit(text)


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.slept.append(s)
        self.now += s


def test_set_rate_takes_effect_for_the_next_chunk() -> None:
    t = FakeTime()
    limiter = Limiter(1_000_000, clock=t.clock, sleep=t.sleep)
    for _ in range(8):
        limiter.take(250_000)
    before = t.now
    limiter.set_rate(100_000)  # ten times slower
    for _ in range(4):
        limiter.take(100_000)
    assert 3.9 <= t.now - before <= 4.1
    limiter.set_rate(0)
    mark = t.now
    limiter.take(10**9)
    assert t.now == mark  # unlimited: no wait at all


def test_rate_raised_while_waiting_is_used_at_once() -> None:
    """A long wait at a low rate re-reads the rate each slice, so raising it (a timetable slot,
    another thread) shortens a take that is already waiting."""
    t = FakeTime()
    limiter = Limiter(1000, burst_seconds=0, clock=t.clock, slice_seconds=0.1,
                      sleep=lambda s: (t.sleep(s), limiter.set_rate(1_000_000)
                                       if t.now >= 0.5 else None))
    limiter.take(100_000)  # 100 s at 1 kB/s; after 0.5 s the rate becomes 1 MB/s
    assert t.now < 1.0


def test_toggle_switches_the_limit_off_and_on() -> None:
    t = FakeTime()
    limiter = Limiter(1_000, clock=t.clock, sleep=t.sleep)
    assert limiter.toggle() is True and limiter.rate == 0 and limiter.configured == 1000
    limiter.take(10**6)
    assert t.now == 0
    assert limiter.toggle() is False and limiter.rate == 1000
    limiter.take(1000)
    assert t.now > 0.5


def test_limiter_from_threads_caps_the_sum() -> None:
    limiter = Limiter(2_000_000, burst_seconds=0.05)
    start = time.monotonic()

    def push() -> None:
        for _ in range(5):
            limiter.take(50_000)

    threads = [threading.Thread(target=push) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(10)
    # 1 MB at 2 MB/s is 0.5 s (less one 0.05 s burst); never faster than the cap.
    assert time.monotonic() - start >= 0.4


def test_apply_timetable_sets_the_slot_rate() -> None:
    limiter = Limiter(0)
    table = parse_limit("08:00,512KiB/s 18:00,off")
    assert apply_timetable(limiter, table, at(0, 9)) == at(0, 18)
    assert limiter.rate == 512 * KiB
    assert apply_timetable(limiter, table, at(0, 19)) == at(1, 8) and limiter.rate == 0


def test_every_change_of_the_rate_in_force_is_counted() -> None:
    """A rate measured across a count change is void (issue 28.7): a slot switch and a
    toggle count, re-applying the same slot does not."""
    lim = Limiter(1000.0)
    table = parse_limit("08:00,512KiB/s 18:00,off")
    apply_timetable(lim, table, datetime(2026, 5, 13, 12, 0))
    assert lim.changes == 1
    apply_timetable(lim, table, datetime(2026, 5, 13, 13, 0))
    assert lim.changes == 1
    apply_timetable(lim, table, datetime(2026, 5, 13, 18, 0))
    lim.toggle()
    lim.toggle()
    assert lim.changes == 4
