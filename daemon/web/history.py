"""The console's chart: bytes per second and files finished, per minute, over the last hour.

Kept as per-minute counters that each call brings up to date from what changed in the job table
since the last one (uploads finished since then, progress of the uploads moving now), so a call
costs what happened since the last call, not what happened in the whole hour. The first call
builds the hour from the table (at start, or after a long gap). Reading the table, not the
uploader, keeps the meaning the same on every station of a fleet: every node's uploads count.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from daemon.jobs.models import JobState

MINUTES = 60  # the chart's span: one bar per minute
# Finished uploads are looked up from a little before the last call: a `done` committed late
# (or stamped by another station's slightly different clock) is still counted, once.
MARGIN = 120.0


def spread(buckets: dict[int, float], begin: float, end: float, nbytes: float,
           first: int) -> None:
    """Add `nbytes`, sent evenly between `begin` and `end` (wall seconds), to per-minute
    buckets (key: minute number since the epoch), skipping minutes before `first`. Costs the
    minutes the span covers inside the window, not the window's length."""
    if nbytes <= 0:
        return
    end = max(end, begin)
    span = end - begin
    lo, hi = max(int(begin // 60), first), int(end // 60)
    if span <= 0:
        if hi >= first:
            buckets[hi] = buckets.get(hi, 0.0) + nbytes
        return
    for minute in range(lo, hi + 1):
        overlap = min(end, (minute + 1) * 60.0) - max(begin, minute * 60.0)
        if overlap > 0:
            buckets[minute] = buckets.get(minute, 0.0) + nbytes * overlap / span


class History:
    """Per-minute counters of the last hour, brought up to date by `snapshot(now, rows)`.

    `rows(since)` gives the uploads that finished at or after `since` and those moving now
    (console_reads.uploads_since). Thread-safe: the console serves requests on several
    threads."""

    def __init__(self, rows: Any):
        self._rows = rows
        self._lock = threading.Lock()
        self._sent: dict[int, float] = {}  # minute -> bytes acknowledged in it
        self._files: dict[int, int] = {}  # minute -> uploads finished in it
        self._counted: dict[int, float] = {}  # done job id -> finished_at, for the margin
        self._moving: dict[int, tuple[int, float]] = {}  # job id -> (bytes counted, as of)
        self._since: float | None = None  # None: build the hour from the table

    def snapshot(self, now: float) -> dict[str, Any]:
        first = math.floor(now / 60) - MINUTES + 1
        with self._lock:
            if self._since is None or self._since < first * 60 - MARGIN:
                self._reset()
                since = first * 60.0
            else:
                since = self._since - MARGIN
            self._take(self._rows(since), first)
            self._since = now
            self._prune(first, now)
            sent = [self._sent.get(m, 0.0) for m in range(first, first + MINUTES)]
            files = [self._files.get(m, 0) for m in range(first, first + MINUTES)]
        return {"start": first * 60, "step": 60,
                "bytes_per_s": [round(b / 60.0, 1) for b in sent], "files": files}

    def _reset(self) -> None:
        self._sent.clear()
        self._files.clear()
        self._counted.clear()
        self._moving.clear()

    def _take(self, rows: Iterable[Mapping[str, Any]], first: int) -> None:
        moving: dict[int, tuple[int, float]] = {}
        for row in rows:
            job_id = row["id"]
            if row["state"] == JobState.DONE:
                if job_id in self._counted or row["finished_at"] is None:
                    continue
                end = row["finished_at"]
                counted, as_of = self._moving.pop(job_id, (0, row["upload_started_at"] or end))
                spread(self._sent, as_of, end, float((row["size"] or 0) - counted), first)
                if int(end // 60) >= first:
                    self._files[int(end // 60)] = self._files.get(int(end // 60), 0) + 1
                self._counted[job_id] = end
            else:  # uploading: what was acknowledged since we last looked
                sent, at = row["bytes_sent"] or 0, row["updated_at"]
                counted, as_of = self._moving.get(job_id, (0, row["upload_started_at"] or at))
                if sent < counted:  # the upload started over: its earlier bytes stay counted
                    counted, as_of = 0, row["upload_started_at"] or at
                spread(self._sent, as_of, at, float(sent - counted), first)
                moving[job_id] = (sent, at)
        # Uploads no longer moving and not done (failed, requeued) keep what they sent.
        self._moving = moving

    def _prune(self, first: int, now: float) -> None:
        for table in (self._sent, self._files):
            for minute in [m for m in table if m < first]:
                del table[minute]
        horizon = now - 2 * MARGIN
        for job_id in [j for j, at in self._counted.items() if at < horizon]:
            del self._counted[job_id]
