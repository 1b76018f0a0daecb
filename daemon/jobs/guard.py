"""The guarded update every job-state change goes through, and the claims it checks.

`move` is one `UPDATE ... WHERE id = ? AND state IN (...)`; a write of an upload carries the
claim that upload was given (models.Claim: id, node, claim_no) and is guarded by it. One that
matches no row raises TransitionError, or TakenOver when the claim is no longer the row's (a
takeover, and perhaps this very node's newer claim of the job since), instead of passing
silently; one that finds the row already where it was going, under this very claim, is this
upload's own earlier write whose commit landed while its answer was lost: that is success.
There is no per-job record of "the" claim: a node may hold a stale and a live claim of one job
at once. `write` is one short write transaction (the write lock taken up front). The
watcher's, the worker's and the operator's transitions (watcher_writes.py, worker_writes.py,
store.py) are all built on these two, each given the one `ClaimGuard` of their Store.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, and_, or_, select, update

from daemon.jobs import engine as engine_mod
from daemon.jobs.models import IN_FLIGHT, Claim, Job, JobState


class TransitionError(RuntimeError):
    """A guarded update matched no row: the job was not in the state the caller assumed."""


class TakenOver(TransitionError):
    """This node's claim on an in-flight job is gone (another node took it over while we were
    presumed dead, or the supervisor let a stuck upload go: work/stuck.py): drop the job,
    write nothing more about it."""


class ClaimGuard:
    """Who this process is (node, the shared folders it sees, the watches not there on it) and
    the guarded write built on that. One per Store, shared by its sides."""

    def __init__(self, engine: Engine, node: str = ""):
        self.engine = engine
        self.fleet = engine_mod.is_server(engine)  # several nodes may share this table
        self.node = node
        self.shared: frozenset[str] = frozenset()  # names of the shared roots this node sees
        # Watches (Job.watch) whose root is not there on this node (watch/roots.py): their jobs
        # are not claimed here; their files are not gone, a fleet's other nodes may take them.
        self.absent: frozenset[str] = frozenset()

    def set_node(self, name: str, shared: Iterable[str] = ()) -> None:
        """Who this process is in the fleet, and which shared folders it can upload from."""
        self.node, self.shared = name, frozenset(shared)

    @property
    def owner(self) -> str:
        """The owner of this node's node-local jobs: its name in a fleet, "" on SQLite."""
        return self.node if self.fleet else ""

    def mine(self) -> ColumnElement[bool]:
        """Jobs this node may claim: in a fleet its own node-local ones and those of the shared
        folders it sees (a dead station's local jobs wake nobody else); on SQLite, all; never
        those of a watch folder that is not there."""
        here = Job.watch.not_in(self.absent)
        if not self.fleet:
            return here
        return and_(here, or_(Job.owner == self.owner,
                              and_(Job.owner == "", Job.watch.in_(self.shared))))

    @contextmanager
    def write(self, durable: bool = False) -> Iterator[Connection]:
        with engine_mod.write_tx(self.engine, durable=durable) as conn:
            yield conn

    def move(self, conn: Connection, job: int | Claim, from_states: Iterable[str],
             to: JobState, now: float, **values: Any) -> None:
        """`job`: the claim of the upload writing (a job in flight needs it), else a job id."""
        froms = [str(s) for s in from_states]
        claim, job_id = (job, job.job_id) if isinstance(job, Claim) else (None, job)
        if claim is None and any(s in IN_FLIGHT for s in froms):
            raise TransitionError(f"job {job_id}: a write of an in-flight job needs the claim "
                                  f"of the upload that writes it")
        q = update(Job).where(Job.id == job_id, Job.state.in_(froms))
        if claim is not None:  # (NULLs: a row an older version left in flight, at recovery)
            q = q.where(Job.node.is_(None) if claim.node is None else Job.node == claim.node,
                        Job.claim_no.is_(None) if claim.no is None else
                        Job.claim_no == claim.no)
        res = conn.execute(q.values(state=str(to), updated_at=now, **values))
        if res.rowcount != 1:
            row = conn.execute(select(Job.state, Job.node, Job.claim_no)
                               .where(Job.id == job_id)).first()
            ours = claim is not None and row is not None and \
                (row.node, row.claim_no) == (claim.node, claim.no)
            if ours and row is not None and row.state == str(to):
                # Our own earlier write of this very step: its commit reached the database but
                # the answer was lost (a dropped connection), and the caller retried. Done.
                return
            if claim is not None and not ours:
                raise TakenOver(
                    f"job {job_id}: claim {claim.no} of {claim.node!r} was taken over or let "
                    f"go (now {row.state if row else 'gone'}, claim "
                    f"{row.claim_no if row else '-'} of {row.node if row else None!r})")
            raise TransitionError(f"job {job_id}: expected state {'/'.join(froms)} for -> "
                                  f"{to}, found {row.state if row else None}")
