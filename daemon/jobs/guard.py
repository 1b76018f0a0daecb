"""The guarded update every job-state change goes through, and the claims it checks.

`move` is one `UPDATE ... WHERE id = ? AND state IN (...)`; for an in-flight job it is also
guarded by the claim this process holds (id, node, claim_no). One that matches no row raises
TransitionError, or TakenOver when another node took the job over meanwhile, instead of passing
silently; one that finds the row already where it was going, under this very claim, is this
process's own earlier write whose commit landed while its answer was lost: that is success.
`write` is one short write transaction (the write lock taken up front) that forgets the claims
it ended once it commits. The watcher's, the worker's and the operator's transitions
(watcher_writes.py, worker_writes.py, store.py) are all built on these two, each given the one
`ClaimGuard` of their Store.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, and_, or_, select, update

from daemon.jobs import engine as engine_mod
from daemon.jobs.models import IN_FLIGHT, Job, JobState


class TransitionError(RuntimeError):
    """A guarded update matched no row: the job was not in the state the caller assumed."""


class TakenOver(TransitionError):
    """This node's claim on an in-flight job is gone (another node took it over while we were
    presumed dead): drop the job, write nothing more about it."""


RELEASED = "uplift_released"  # conn.info key: claims a transaction ends


class ClaimGuard:
    """Who this process is (node, the shared folders it sees, the watches not there on it), the
    claims it holds, and the guarded write built on that. One per Store, shared by its sides."""

    def __init__(self, engine: Engine, node: str = ""):
        self.engine = engine
        self.fleet = engine_mod.is_server(engine)  # several nodes may share this table
        self.node = node
        self.shared: frozenset[str] = frozenset()  # names of the shared roots this node sees
        # Watches (Job.watch) whose root is not there on this node (watch/roots.py): their jobs
        # are not claimed here; their files are not gone, a fleet's other nodes may take them.
        self.absent: frozenset[str] = frozenset()
        self.held: dict[int, int] = {}  # job id -> claim_no of the claims this process holds

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

    def hold(self, job_id: int, claim_no: int) -> None:
        """This process claimed the job: its later in-flight writes are guarded by the claim."""
        self.held[job_id] = claim_no

    @contextmanager
    def write(self, durable: bool = False) -> Iterator[Connection]:
        released: list[int] = []  # claims that end if (and only if) this transaction commits
        with engine_mod.write_tx(self.engine, durable=durable) as conn:
            conn.info[RELEASED] = released
            yield conn
        for job_id in released:
            self.held.pop(job_id, None)

    def move(self, conn: Connection, job_id: int, from_states: Iterable[str], to: JobState,
              now: float, **values: Any) -> None:
        froms = [str(s) for s in from_states]
        q = update(Job).where(Job.id == job_id, Job.state.in_(froms))
        claim = self.held.get(job_id) if any(s in IN_FLIGHT for s in froms) else None
        if claim is not None:
            q = q.where(Job.node == self.node, Job.claim_no == claim)
        res = conn.execute(q.values(state=str(to), updated_at=now, **values))
        if res.rowcount != 1:
            row = conn.execute(select(Job.state, Job.node, Job.claim_no)
                               .where(Job.id == job_id)).first()
            ours = claim is not None and row is not None and \
                (row.node, row.claim_no) == (self.node, claim)
            if ours and row is not None and row.state == str(to):
                # Our own earlier write of this very step: its commit reached the database but
                # the answer was lost (a dropped connection), and the caller retried. Done.
                if to not in IN_FLIGHT:
                    conn.info.get(RELEASED, []).append(job_id)
                return
            if claim is not None and not ours:
                # Kept: every later write of this stale claim must fail the same way.
                raise TakenOver(
                    f"job {job_id}: claim {claim} of {self.node!r} was taken over (now "
                    f"{row.state if row else 'gone'}, claim "
                    f"{row.claim_no if row else '-'} of {row.node if row else None!r})")
            raise TransitionError(f"job {job_id}: expected state {'/'.join(froms)} for -> "
                                  f"{to}, found {row.state if row else None}")
        if claim is not None and to not in IN_FLIGHT:
            conn.info.get(RELEASED, []).append(job_id)
