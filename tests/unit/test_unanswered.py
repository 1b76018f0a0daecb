"""work/unanswered.py: the jobs whose capture reads keep failing, told as one ATTENTION from
ATTENTION_AFTER on, changed only when what it says changes, and cleared when the last such job
settles (or stops being asked about)."""

from __future__ import annotations

from daemon.work.landed import ATTENTION_AFTER, UNANSWERED
from daemon.work.unanswered import STALE, Unanswered


class Clock:
    def __init__(self) -> None:
        self.now = 1.7e9

    def __call__(self) -> float:
        return self.now


def test_failed_reads_are_told_after_the_time_and_cleared_when_the_last_job_settles() -> None:
    told: list[tuple[str, str | None]] = []
    clock = Clock()
    u = Unanswered(lambda n, m: told.append((n, m)), clock)
    boundary = clock.now
    u.read(1, boundary)
    clock.now += ATTENTION_AFTER - 1
    u.read(1, boundary)
    assert told == []  # not yet: reads have failed for less than the time
    clock.now += 1
    u.read(1, boundary)
    u.read(2, clock.now - ATTENTION_AFTER - 5)
    assert [n for n, _ in told] == [UNANSWERED, UNANSWERED]
    assert "1 upload arrived" in str(told[0][1]) and "2 uploads arrived" in str(told[1][1])
    clock.now += 60
    u.read(1, boundary)  # another failed read, nothing new to say
    u.refresh()
    assert len(told) == 2
    u.read(2, None)
    assert "1 upload arrived" in str(told[-1][1])
    u.read(1, None)  # the last one settled
    assert told[-1] == (UNANSWERED, None)


def test_a_job_no_longer_asked_about_is_dropped() -> None:
    told: list[tuple[str, str | None]] = []
    clock = Clock()
    u = Unanswered(lambda n, m: told.append((n, m)), clock)
    u.read(7, clock.now - ATTENTION_AFTER)
    assert told and told[-1][1] is not None
    clock.now += STALE / 2
    u.refresh()
    assert told[-1][1] is not None
    clock.now += STALE
    u.refresh()
    assert told[-1] == (UNANSWERED, None)
