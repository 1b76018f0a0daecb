"""Retention's reads and writes of the job table (station/retention.py decides and deletes):
the done jobs of this node's watch folders whose files are still where they were uploaded,
each with Uplift's verdict on its capture; and the guarded record of what retention did with
one (`deleted`, or found `changed` / `missing`), which takes the row out of its reads for good.

A record matches only a done row retention has not touched yet: a second node (or a second
look) recording the same file again is RetentionTaken, never a silent pass."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update

from daemon.jobs import engine as engine_mod
from daemon.jobs import paths
from daemon.jobs.guard import ClaimGuard, TransitionError
from daemon.jobs.models import ACTIVE, Job, JobState

DELETED, CHANGED, MISSING = "deleted", "changed", "missing"
OUTCOMES = (DELETED, CHANGED, MISSING)


class RetentionTaken(TransitionError):
    """The job was no longer done and untouched when retention recorded it."""


@dataclass(frozen=True)
class Kept:
    """A done job's file as it was uploaded: where it is on this node, its uploaded version,
    when its upload was done, and Uplift's verdict on its capture (None: never followed)."""
    job_id: int
    path: str
    size: int
    mtime_ns: int
    finished_at: float
    analysis: str | None
    shared: bool  # on a shared folder: another node's mtime may be rounded to 2 s


class RetentionTable:
    def __init__(self, guard: ClaimGuard):
        self.guard = guard

    def kept(self, roots: Mapping[str, tuple[str, bool]], before: float | None = None
             ) -> list[Kept]:
        """The untouched done jobs under `roots` (Job.watch -> this node's root path and
        whether it is shared), oldest done first; `before`: only those done before then."""
        if not roots:
            return []
        where: list[Any] = [Job.state == JobState.DONE, Job.retention.is_(None),
                            Job.archived_path.is_(None), Job.watch.in_(list(roots)),
                            Job.owner.in_(("", self.guard.owner))]
        if before is not None:
            where.append(Job.finished_at < before)
        cols = (Job.id, Job.watch, Job.rel_path, Job.size, Job.mtime_ns, Job.finished_at,
                Job.updated_at, Job.analysis_status)
        with engine_mod.read_tx(self.guard.engine) as conn:
            rows = conn.execute(select(*cols).where(*where).order_by(Job.finished_at, Job.id))
            return [Kept(r.id, os.path.join(roots[r.watch][0], paths.from_db(r.rel_path)),
                         int(r.size), int(r.mtime_ns), float(r.finished_at or r.updated_at),
                         r.analysis_status, roots[r.watch][1]) for r in rows]

    def waiting(self, roots: Mapping[str, tuple[str, bool]]) -> int:
        """Files under `roots` not uploaded yet (or failed): never retention's to delete."""
        if not roots:
            return 0
        states = [str(s) for s in (*ACTIVE, JobState.FAILED)]
        with engine_mod.read_tx(self.guard.engine) as conn:
            return int(conn.execute(select(func.count()).where(
                Job.state.in_(states), Job.watch.in_(list(roots)),
                Job.owner.in_(("", self.guard.owner)))).scalar() or 0)

    def record(self, job_id: int, outcome: str, now: float) -> None:
        assert outcome in OUTCOMES
        with self.guard.write() as conn:
            res = conn.execute(update(Job).where(
                Job.id == job_id, Job.state == JobState.DONE, Job.retention.is_(None))
                .values(retention=outcome, retained_at=now))
            if res.rowcount != 1:
                row = conn.execute(select(Job.state, Job.retention).where(Job.id == job_id)
                                   ).first()
                found = "gone" if row is None else f"{row.state}, retention {row.retention}"
                raise RetentionTaken(f"job {job_id}: expected a done job retention had not "
                                     f"touched, found {found}")

    def freed(self) -> dict[str, Any]:
        """`status --json`'s "retention": bytes and files deleted, since the first (None:
        nothing yet)."""
        with engine_mod.read_tx(self.guard.engine) as conn:
            row = conn.execute(select(func.coalesce(func.sum(Job.size), 0), func.count(),
                                      func.min(Job.retained_at))
                               .where(Job.retention == DELETED)).one()
        return {"freed_bytes": int(row[0]), "freed_files": int(row[1]),
                "since": None if row[2] is None else float(row[2])}
