"""A settled file's verdict written to the job table: `classify` on the facts read from it,
then `resolve_twins` against the other jobs of the same movie; queued, held with a reason,
skipped, or failed with a reason a coach can read."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from daemon import logs
from daemon.config import Config, WatchRoot
from daemon.jobs import shares
from daemon.jobs.left import moved_reason
from daemon.jobs.models import Job, JobState
from daemon.jobs.store import Ready, Store
from daemon.watch import facts
from daemon.watch.classify import (
    Fail,
    Hold,
    Queue,
    Skip,
    Twin,
    classify,
    resolve_twins,
)

log = logs.get("watcher")
HOLD_RECHECK = 5.0  # a file waiting for its twin's upload is looked at again this often
TWIN_STATES = (JobState.PENDING, JobState.QUEUED, JobState.RESERVED, JobState.UPLOADING,
               JobState.DONE)


class Verdicts:
    """`recheck(path, seconds)`: look at a held file again (the settle queue);
    `root_absent(path)`: its watch folder is not there (a twin there counts as not moved);
    `left(path)`: a job there ended because its file moved away (the path is looked at anew)."""

    def __init__(self, store: Store, wall: Callable[[], float], on_queued: Callable[[], None],
                 on_failed: Callable[[str, str], None], recheck: Callable[[str, float], None],
                 root_absent: Callable[[str], bool], left: Callable[[str], None]):
        self.store, self.wall = store, wall
        self.on_queued, self.on_failed = on_queued, on_failed
        self.recheck, self.root_absent, self.left = recheck, root_absent, left

    def promote(self, cfg: Config, athletes: Mapping[str, str], path: str, root: WatchRoot,
                job_id: int | None, st: os.stat_result) -> JobState | None:
        """Settled: queue it, hold it with a reason, or end it with a reason. None: it waits
        for a twin's upload (looked at again in HOLD_RECHECK)."""
        assert job_id is not None
        bound = log.bind(job_id=job_id, path=path)
        found = facts.read(path, root, st, self.wall(), self.store.is_forced(job_id))
        verdict = classify(found, athletes, str(cfg.source))
        now = self.wall()
        if isinstance(verdict, Hold):
            self.store.hold(job_id, verdict.reason, now)
            bound.warning("job.held", reason=verdict.reason)
            return JobState.PENDING
        if isinstance(verdict, Fail):
            self.store.fail(job_id, [JobState.PENDING], now, verdict.reason)
            self.on_failed(path, verdict.reason)
            bound.warning("job.refused", reason=verdict.reason)
            return JobState.FAILED
        return self._queue(cfg, path, job_id, verdict, bound)

    def _queue(self, cfg: Config, path: str, job_id: int, ready: Ready,
               bound: Any) -> JobState | None:
        now = self.wall()
        twins_verdict: Queue | Skip | Hold = Queue()
        found: dict[int, Job] = {}
        if not cfg.upload.allow_duplicates and ready.fingerprint is not None:
            found = {j.id: j for j in self.store.twins(ready.athlete_id, ready.fingerprint,
                                                       job_id, TWIN_STATES)}
            twins_verdict = resolve_twins([Twin(j.id, j.path, j.state, self._twin_there(cfg, j))
                                           for j in found.values()])
        if isinstance(twins_verdict, Hold):
            self.store.hold(job_id, twins_verdict.reason, now)
            self.recheck(path, HOLD_RECHECK)
            bound.info("job.held", reason=twins_verdict.reason)
            return None
        if isinstance(twins_verdict, Skip):
            self.store.skip(job_id, [JobState.PENDING], now, twins_verdict.reason,
                            fingerprint=ready.fingerprint, athlete_id=ready.athlete_id)
            bound.info("job.skipped", reason=twins_verdict.reason)
            return JobState.SKIPPED
        for twin in twins_verdict.moved_from:
            self.store.skip(twin.job_id, [twin.state], now, moved_reason(path))
            bound.info("job.moved", from_job=twin.job_id, from_path=twin.path)
            # Its version is not known at the old path now: seen there again, it is work.
            self.left(shares.localize(found[twin.job_id], cfg.watches).path)
        if not self.store.mark_ready(job_id, ready, now):
            # The file went back to a version another job of this path already holds.
            self.store.skip(job_id, [JobState.PENDING], now,
                            "the same version of this file is already a job")
            return JobState.SKIPPED
        bound.info("job.queued", athlete_id=ready.athlete_id)
        self.on_queued()
        return JobState.QUEUED

    def _twin_there(self, cfg: Config, job: Job) -> bool:
        """Is a twin's file at its place, as this node sees it? A shared file at this node's
        mount of the share; a file this node cannot look at (another node's, or under a root
        that is not there) counts as there: it must not be taken for moved."""
        if job.owner not in ("", self.store.owner):
            return True
        if job.watch != job.root:  # a shared watch's job, maybe stored by another node
            roots = shares.watch_roots(cfg.watches)
            if job.watch not in roots:
                return True
            job = shares.localize(job, cfg.watches)
        if _holds(job.path, job.size, job.mtime_ns):
            return True
        return self.root_absent(job.path)


def _holds(path: str, size: int, mtime_ns: int) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    return (st.st_size, st.st_mtime_ns) == (size, mtime_ns)

