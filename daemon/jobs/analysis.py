"""The follower's writes and reads of the job table (daemon/analysis/): a capture's following
begins with its `done`, is claimed a batch at a time by one node (a lease: a node that dies
leaves it to run out, and another takes the capture over), and ends with a final status.

Every write is a guarded update: it matches only a row still `processing` under this node's
claim (node + lease), so a node whose lease ran out (a takeover) writes nothing; such a write is
AnalysisTakenOver, never a silent pass.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, case, func, or_, select, update

from daemon.analysis.schedule import FIRST_LOOK, STATUSES, first_look
from daemon.jobs import engine as engine_mod
from daemon.jobs.guard import ClaimGuard, TransitionError
from daemon.jobs.models import Job, JobState

PROCESSING = "processing"
LEASE = 300.0  # seconds a node holds the captures it claimed, unless it writes first


class AnalysisTakenOver(TransitionError):
    """The capture is not ours to write any more (its lease ran out, another node has it)."""


@dataclass(frozen=True)
class Followed:
    """One claimed capture: the claim (node, lease) guards its write."""
    job_id: int
    session_id: str
    path: str
    athlete_id: str | None
    looks: int
    deadline: float
    node: str
    lease: float


def start_values(now: float, follow_for: float | None) -> dict[str, Any]:
    """The columns a `done` sets: following begins (none when following is off)."""
    if follow_for is None:
        return {}
    deadline = now + follow_for
    return {"analysis_status": PROCESSING, "analysis_error": None, "analysis_fps": None,
            "analysis_checked_at": None, "analysis_next_at": first_look(now, deadline),
            "analysis_deadline": deadline, "analysis_looks": 0, "analysis_node": None,
            "analysis_lease": None}


def _due(now: float) -> Any:
    return (Job.state == JobState.DONE, Job.analysis_status == PROCESSING,
            Job.analysis_next_at <= now,
            or_(Job.analysis_lease.is_(None), Job.analysis_lease < now))


class AnalysisTable:
    def __init__(self, guard: ClaimGuard):
        self.guard = guard

    def claim(self, now: float, limit: int, lease: float = LEASE) -> list[Followed]:
        """Take up to `limit` due captures for this node (nodes claiming at once skip each
        other's locked rows), the soonest due first."""
        node, until = self.guard.node, now + lease
        cols = (Job.id, Job.session_id, Job.path, Job.athlete_id, Job.analysis_looks,
                Job.analysis_deadline)
        with self.guard.write() as conn:
            pick = select(Job.id).where(*_due(now)).order_by(Job.analysis_next_at, Job.id) \
                .limit(limit)
            if self.guard.fleet:
                pick = pick.with_for_update(skip_locked=True)
            ids = list(conn.execute(pick).scalars())
            if not ids:
                return []
            conn.execute(update(Job).where(Job.id.in_(ids), *_due(now))
                         .values(analysis_node=node, analysis_lease=until))
            rows = conn.execute(select(*cols).where(
                Job.id.in_(ids), Job.analysis_node == node, Job.analysis_lease == until))
            return [Followed(r.id, r.session_id or "", r.path, r.athlete_id,
                             r.analysis_looks or 0, r.analysis_deadline or now, node, until)
                    for r in rows]

    def again(self, f: Followed, now: float, next_at: float) -> None:
        """Looked (or could not): still processing, next look at `next_at`; claim released."""
        self._write(f, analysis_checked_at=now, analysis_next_at=next_at,
                    analysis_looks=f.looks + 1)

    def release(self, items: Iterable[Followed], next_at: float) -> None:
        """Not looked at (paused, stopping): each keeps its turn, no later than `next_at`."""
        for f in items:
            self._write(f, analysis_next_at=next_at)

    def final(self, f: Followed, now: float, status: str, error: str | None,
              fps: float | None) -> None:
        assert status in STATUSES and status != PROCESSING
        self._write(f, analysis_status=status, analysis_error=error, analysis_fps=fps,
                    analysis_checked_at=now, analysis_next_at=None,
                    analysis_looks=f.looks + 1)

    def _write(self, f: Followed, **values: Any) -> None:
        with self.guard.write() as conn:
            res = conn.execute(update(Job).where(
                Job.id == f.job_id, Job.analysis_status == PROCESSING,
                Job.analysis_node == f.node, Job.analysis_lease == f.lease)
                .values(analysis_lease=None, **values))
            if res.rowcount != 1:
                raise AnalysisTakenOver(_why(conn, f))

    def next_due(self) -> float | None:
        """When the soonest followed capture is due (its lease's end if it is claimed), or
        None when nothing is followed."""
        due = case((Job.analysis_lease > Job.analysis_next_at, Job.analysis_lease),
                   else_=Job.analysis_next_at)
        with engine_mod.read_tx(self.guard.engine) as conn:
            row = conn.execute(select(func.min(due)).where(
                Job.analysis_status == PROCESSING)).first()
        return None if row is None or row[0] is None else float(row[0])

    def counts(self, conn: Connection | None = None) -> dict[str, int]:
        """How many captures are in each analysis status (uploads done before 0009: none)."""
        def read(c: Connection) -> dict[str, int]:
            rows = c.execute(select(Job.analysis_status, func.count()).where(
                Job.analysis_status.is_not(None)).group_by(Job.analysis_status))
            found = {s: n for s, n in rows}
            return {s: int(found.get(s, 0)) for s in STATUSES}
        if conn is not None:
            return read(conn)
        with engine_mod.read_tx(self.guard.engine) as c:
            return read(c)


def _why(conn: Connection, f: Followed) -> str:
    row = conn.execute(select(Job.analysis_status, Job.analysis_node, Job.analysis_lease)
                       .where(Job.id == f.job_id)).first()
    now = "gone" if row is None else \
        f"{row.analysis_status}, held by {row.analysis_node!r} until {row.analysis_lease}"
    return (f"job {f.job_id}: the capture {f.session_id} is no longer followed under "
            f"{f.node!r}'s claim (now {now})")


__all__ = ["FIRST_LOOK", "AnalysisTable", "AnalysisTakenOver", "Followed", "start_values"]
