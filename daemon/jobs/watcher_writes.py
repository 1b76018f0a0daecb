"""The watcher's transitions: a file seen (a new job, or a known one re-settled), held, queued
or skipped while pending.

The watcher only records facts (a file exists, its size and mtime); these guarded writes turn
them into jobs. A file is named by (owner, watch, rel_path) whatever its version, so a shared
root's files are one job for every node that mounts it, their mtimes compared to 2 s.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from daemon.jobs import engine as engine_mod
from daemon.jobs import paths
from daemon.jobs.guard import ClaimGuard
from daemon.jobs.left import left_its_path
from daemon.jobs.models import IN_FLIGHT, Job, JobState

COARSE_NS = 2_000_000_000  # SMB/FAT keep mtimes to 2 s: a shared file's version compares so


def coarse(mtime_ns: int) -> int:
    return mtime_ns - mtime_ns % COARSE_NS


@dataclass(frozen=True)
class Seen:
    """What the store made of a file the watcher saw."""

    job_id: int
    state: JobState
    new: bool  # a job was created or reset to pending: the watcher should settle it
    exact: bool = True  # the job holds this very version (not an older one being uploaded)
    earlier: int | None = None  # a new job of a file uploaded before: that upload's job


@dataclass(frozen=True)
class Ready:
    """Facts fixed when a pending job becomes queued."""

    size: int
    mtime_ns: int
    athlete_id: str
    session_group_id: str
    file_name: str
    capture_time: str
    camera_configuration: str  # JSON
    movement_attributes: str  # JSON
    fingerprint: str | None = None


class WatcherWrites:
    """What the watcher writes: observe, hold, mark_ready, record_facts, skip_pending."""

    def __init__(self, guard: ClaimGuard):
        self.guard = guard

    def _ident(self, path: str, root: str, shared_name: str | None) -> tuple[str, str, str]:
        """(owner, watch, rel_path) naming one file whatever its version: a shared root's
        files by the share's name (every node mounts it elsewhere), node-local ones by node."""
        owner, watch = ("", shared_name) if shared_name is not None else (self.guard.owner, root)
        return owner, watch, paths.to_db(os.path.relpath(path, root))

    def _where(self, path: str, root: str, shared_name: str | None) -> list[Any]:
        owner, watch, rel = self._ident(path, root, shared_name)
        return [Job.owner == owner, Job.watch == watch, Job.rel_path == rel]

    def _version(self, size: int, mtime_ns: int, shared: bool) -> list[Any]:
        if not shared:
            return [Job.size == size, Job.mtime_ns == mtime_ns]
        # Another node may see the share's mtimes rounded (down, or up on FAT) to 2 s.
        return [Job.size == size, Job.mtime_ns.between(coarse(mtime_ns) - COARSE_NS,
                                                       coarse(mtime_ns) + COARSE_NS)]

    def observe(self, path: str, root: str, size: int, mtime_ns: int, now: float,
                shared_name: str | None = None) -> Seen:
        """Record that `path` (under the watch root `root`; in the shared root `shared_name`,
        if so) exists with this size and mtime."""
        for attempt in (1, 2):
            try:
                return self._observe(path, root, size, mtime_ns, now, shared_name)
            except IntegrityError:
                if attempt == 2:  # another node wrote this version between our two statements
                    raise
        raise AssertionError("unreachable")

    def _observe(self, path: str, root: str, size: int, mtime_ns: int, now: float,
                 shared_name: str | None) -> Seen:
        shared = shared_name is not None
        ident = self._where(path, root, shared_name)
        key_mtime = coarse(mtime_ns) if shared else mtime_ns
        with self.guard.write() as conn:
            known = conn.execute(select(Job.id, Job.state, Job.last_error).where(
                *ident, *self._version(size, mtime_ns, shared)).order_by(Job.id)).first()
            if known is not None and left_its_path(known.state, known.last_error):
                # Skipped because it left this path, yet here at the same version (renamed
                # back, its folder back): nothing was decided about it here, so it is work.
                self.guard.move(conn, known.id, [JobState.SKIPPED], JobState.PENDING, now,
                                last_error=None, finished_at=None)
                return Seen(known.id, JobState.PENDING, True)
            if known is not None:
                state = JobState(known.state)
                return Seen(known.id, state, state == JobState.PENDING)
            active = conn.execute(select(Job.id, Job.state).where(
                *ident, Job.state.in_([JobState.PENDING, JobState.QUEUED]))
                .order_by(Job.id.desc()).limit(1)).first()
            if active is not None:
                # Still being written, or changed after it was queued: settle it again.
                self.guard.move(conn, active.id, [active.state], JobState.PENDING, now,
                                size=size, mtime_ns=key_mtime, last_error=None)
                return Seen(active.id, JobState.PENDING, True)
            busy = conn.execute(select(Job.id, Job.state).where(
                *ident, Job.state.in_(IN_FLIGHT)).limit(1)).first()
            if busy is not None:
                # The worker re-checks size and mtime after the upload and re-settles it.
                return Seen(busy.id, JobState(busy.state), False, exact=False)
            owner, watch, rel = self._ident(path, root, shared_name)
            # Several nodes may insert one shared file at once: the first wins, all read it.
            conn.execute(engine_mod.insert_for(conn)(Job).values(
                path=paths.to_db(path), root=root, watch=watch, rel_path=rel, owner=owner,
                node=owner or None, claim_no=0, size=size, mtime_ns=key_mtime,
                state=str(JobState.PENDING), attempts=0, refusals=0, next_attempt_at=0.0,
                bytes_sent=0, created_at=now, updated_at=now, force=False,
            ).on_conflict_do_nothing())
            row = conn.execute(select(Job.id, Job.state).where(
                *ident, Job.size == size, Job.mtime_ns == key_mtime)).one()
            # Changed after it was uploaded (reopened and written to): a new capture, and
            # the log names the one it follows.
            earlier = conn.execute(select(func.max(Job.id)).where(
                *ident, Job.id < row.id, Job.state == JobState.DONE)).scalar()
            return Seen(row.id, JobState(row.state), row.state == JobState.PENDING,
                        earlier=earlier)

    def skip_pending(self, path: str, now: float, reason: str, root: str | None = None,
                     shared_name: str | None = None) -> list[int]:
        """The file is gone while pending (settling or held): end its job with the reason."""
        where = self._where(path, root, shared_name) if root is not None else \
            [Job.path == paths.to_db(path), Job.owner.in_(("", self.guard.owner))]
        with self.guard.write() as conn:
            ids = list(conn.execute(select(Job.id).where(
                *where, Job.state == JobState.PENDING)).scalars())
            for job_id in ids:
                self.guard.move(conn, job_id, [JobState.PENDING], JobState.SKIPPED, now,
                                last_error=reason, finished_at=now)
            return ids

    def hold_pending(self, path: str, now: float, reason: str, root: str,
                     shared_name: str | None = None) -> list[int]:
        """The file is not at its path because its root is not there: its pending jobs wait,
        with the reason."""
        with self.guard.write() as conn:
            ids = list(conn.execute(select(Job.id).where(
                *self._where(path, root, shared_name), Job.state == JobState.PENDING)).scalars())
            for job_id in ids:
                self.guard.move(conn, job_id, [JobState.PENDING], JobState.PENDING, now,
                                last_error=reason)
            return ids

    def hold(self, job_id: int, reason: str, now: float) -> None:
        """Keep a pending job pending, with the reason it waits."""
        with self.guard.write() as conn:
            self.guard.move(conn, job_id, [JobState.PENDING], JobState.PENDING, now,
                            last_error=reason)

    def mark_ready(self, job_id: int, ready: Ready, now: float) -> bool:
        """pending -> queued with the facts the reservation needs. False when the file went back
        to a version another job of the same path already holds (the caller skips it)."""
        try:
            with self.guard.write() as conn:
                version = {"size": ready.size, "mtime_ns": ready.mtime_ns}
                row = conn.execute(select(Job.watch, Job.root, Job.size, Job.mtime_ns)
                                   .where(Job.id == job_id)).first()
                if row is not None and row.watch != row.root:  # a shared root's job
                    same = row.size == ready.size and \
                        abs(row.mtime_ns - ready.mtime_ns) <= COARSE_NS
                    version = {} if same else {"size": ready.size,
                                               "mtime_ns": coarse(ready.mtime_ns)}
                self.guard.move(conn, job_id, [JobState.PENDING], JobState.QUEUED, now,
                                fingerprint=ready.fingerprint, **version,
                                athlete_id=ready.athlete_id,
                                session_group_id=ready.session_group_id, file_name=ready.file_name,
                                capture_time=ready.capture_time,
                                camera_configuration=ready.camera_configuration,
                                movement_attributes=ready.movement_attributes,
                                last_error=None, next_attempt_at=now)
                engine_mod.notify_jobs(conn)
            return True
        except IntegrityError:
            return False

    def record_facts(self, job_id: int, now: float, **facts: Any) -> None:
        """Facts found while settling a job that will not be queued (e.g. its fingerprint)."""
        with self.guard.write() as conn:
            self.guard.move(conn, job_id, [JobState.PENDING], JobState.PENDING, now, **facts)
