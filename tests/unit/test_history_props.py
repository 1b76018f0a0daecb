"""The console chart's per-minute counters (daemon/web/history.py): whatever order uploads
finish in and however often the page asks, every byte is counted once, in the minutes it was
sent, and every finished file once."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from daemon.jobs.models import JobState
from daemon.web.history import MINUTES, History, spread

NOW = 1_800_000_000.0 - 17.0  # not on a minute boundary
START = (NOW // 60 - MINUTES + 1) * 60


class Table:
    """Rows as console_reads.uploads_since gives them, revealed as time goes on."""

    def __init__(self) -> None:
        self.rows: dict[int, dict[str, Any]] = {}

    def __call__(self, since: float) -> list[dict[str, Any]]:
        return [dict(r) for r in self.rows.values()
                if r["state"] == JobState.UPLOADING
                or (r["state"] == JobState.DONE and r["finished_at"] >= since)]


uploads = st.lists(st.tuples(
    st.floats(min_value=START, max_value=NOW - 1, allow_nan=False),  # begin
    st.floats(min_value=0, max_value=900, allow_nan=False),  # duration
    st.integers(min_value=1, max_value=10**10)), min_size=0, max_size=40)


def _done(job_id: int, begin: float, length: float, size: int) -> dict[str, Any]:
    end = min(begin + length, NOW)
    return {"id": job_id, "state": JobState.DONE, "size": size, "bytes_sent": size,
            "upload_started_at": begin, "finished_at": end, "updated_at": end}


@given(uploads, st.lists(st.floats(min_value=START - 3600, max_value=NOW, allow_nan=False),
                        max_size=6))
def test_every_byte_and_file_counted_once_however_often_asked(ups: list[Any],
                                                              asks: list[float]) -> None:
    table = Table()
    history = History(table)
    # The page asks at arbitrary times; each time the table holds what had finished by then.
    for when in sorted(asks):
        for i, up in enumerate(ups):
            if _done(i, *up)["finished_at"] <= when:
                table.rows[i] = _done(i, *up)
        history.snapshot(when)
    table.rows = {i: _done(i, *up) for i, up in enumerate(ups)}
    h = history.snapshot(NOW)
    assert h["start"] == START and len(h["files"]) == MINUTES == len(h["bytes_per_s"])
    assert sum(h["files"]) == len(ups)
    total = sum(size for _, _, size in ups)
    assert abs(sum(h["bytes_per_s"]) * 60 - total) <= 0.05 * 60 * MINUTES + total * 1e-9


@given(st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=20))
def test_an_upload_watched_while_moving_counts_its_size_once(steps: list[int]) -> None:
    table, size = Table(), 10**6 + sum(steps)
    history = History(table)
    begin, sent, at = NOW - 1500, 0, NOW - 1500
    for step in steps:
        sent, at = sent + step, at + 30
        table.rows[1] = {"id": 1, "state": JobState.UPLOADING, "size": size, "bytes_sent": sent,
                         "upload_started_at": begin, "finished_at": None, "updated_at": at}
        history.snapshot(at)
    table.rows[1] = _done(1, begin, at + 30 - begin, size)
    h = history.snapshot(NOW)
    assert sum(h["files"]) == 1
    assert abs(sum(h["bytes_per_s"]) * 60 - size) <= 0.05 * 60 * MINUTES


def test_bytes_land_in_the_minutes_they_were_sent() -> None:
    buckets: dict[int, float] = {}
    spread(buckets, 90.0, 210.0, 120.0, first=0)  # 1:30 to 3:30, a byte a second
    assert buckets == {1: 30.0, 2: 60.0, 3: 30.0}
    buckets.clear()
    spread(buckets, 90.0, 210.0, 120.0, first=2)  # minute 1 is outside the window
    assert buckets == {2: 60.0, 3: 30.0}


def test_an_hour_old_counter_is_dropped() -> None:
    table = Table()
    history = History(table)
    table.rows[1] = _done(1, START + 1, 10, 6000)
    assert sum(history.snapshot(NOW)["files"]) == 1
    later = history.snapshot(NOW + 3600)
    assert sum(later["files"]) == 0 and sum(later["bytes_per_s"]) == 0
