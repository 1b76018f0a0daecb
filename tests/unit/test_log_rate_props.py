"""The log's rate limit (issue 30, item 1): no event name writes more than ten lines in any
one-second window, and the next line written says how many of that name were dropped."""

from __future__ import annotations

import logging

from hypothesis import given
from hypothesis import strategies as st

from daemon.logs import MAX_LINES_PER_SECOND, RateLimit


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def record(event: str) -> logging.LogRecord:
    return logging.LogRecord("uplift", logging.INFO, __file__, 1, {"event": event}, None, None)


gaps = st.floats(min_value=0, max_value=0.3) | st.sampled_from([0.0, 0.01, 0.99, 1.0])
events = st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), gaps), max_size=300)


@given(events)
def test_never_more_than_the_limit_and_every_drop_is_counted(seq: list[tuple[str, float]]) -> None:
    clock = Clock()
    limit = RateLimit(clock=clock)
    written: dict[str, list[float]] = {}
    dropped_total: dict[str, int] = {}
    reported: dict[str, int] = {}
    for name, gap in seq:
        clock.now += gap
        rec = record(name)
        if limit.filter(rec):
            written.setdefault(name, []).append(clock.now)
            note = rec.msg.get("dropped", 0)  # type: ignore[union-attr]
            reported[name] = reported.get(name, 0) + note
            for other, n in rec.msg.get("dropped_before", {}).items():  # type: ignore[union-attr]
                assert other != name
                reported[other] = reported.get(other, 0) + n
        else:
            dropped_total[name] = dropped_total.get(name, 0) + 1
    for times in written.values():
        for i, t in enumerate(times):  # any MAX+1 consecutive lines span at least a second
            if i >= MAX_LINES_PER_SECOND:
                assert t - times[i - MAX_LINES_PER_SECOND] >= 1.0 - 1e-9
    for name, n in dropped_total.items():
        # What was dropped is reported once, by a later line of that name or of any name once
        # its second is over, or is still pending.
        assert reported.get(name, 0) <= n
    clock.now += 1.0
    last = record("z")
    assert limit.filter(last)
    for other, n in last.msg.get("dropped_before", {}).items():  # type: ignore[union-attr]
        reported[other] = reported.get(other, 0) + n
    assert {k: v for k, v in reported.items() if v} == dropped_total  # none left untold
    assert sum(len(t) for t in written.values()) + sum(dropped_total.values()) == len(seq)


def test_a_flood_then_quiet_reports_the_count() -> None:
    clock = Clock()
    limit = RateLimit(clock=clock)
    passed = [limit.filter(record("socket.accept")) for _ in range(1000)]
    assert passed.count(True) == MAX_LINES_PER_SECOND
    clock.now += 1.5
    rec = record("socket.accept")
    assert limit.filter(rec)
    assert rec.msg["dropped"] == 1000 - MAX_LINES_PER_SECOND  # type: ignore[index]


def test_library_lines_with_varying_numbers_count_as_one_name() -> None:
    clock = Clock()
    limit = RateLimit(clock=clock)
    recs = [logging.LogRecord("asyncio", logging.ERROR, __file__, 1,
                              f"socket.accept() out of system resource\nsocket: fd={n}", None,
                              None) for n in range(50)]
    assert sum(limit.filter(r) for r in recs) == MAX_LINES_PER_SECOND


def test_a_burst_that_ends_dropped_is_told_by_the_next_line_of_any_name() -> None:
    """500 uploads done within a second: 490 `upload.done` lines dropped and no later one of
    that name; the next line of another name, a second on, says so."""
    clock = Clock()
    limit = RateLimit(clock=clock)
    for _ in range(500):
        limit.filter(record("upload.done"))
    clock.now += 0.5
    early = record("job.queued")
    assert limit.filter(early) and "dropped_before" not in early.msg  # type: ignore[operator]
    clock.now += 0.6
    later = record("daemon.stopping")
    assert limit.filter(later)
    assert later.msg["dropped_before"] == {"upload.done": 490}  # type: ignore[index]
    again = record("upload.done")
    assert limit.filter(again) and "dropped" not in again.msg  # type: ignore[operator]
