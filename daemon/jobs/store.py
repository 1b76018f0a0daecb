"""The one gateway to the job table: transitions here, read queries in reads.py.

Every state change is a guarded UPDATE (`WHERE id = ? AND state IN (...)`); one that matches no
row raises TransitionError instead of passing silently. A write of an in-flight job is also
guarded by the claim this process holds (id, node, claim_no): when another node took the job
over meanwhile, it changes nothing and raises TakenOver. Transactions are short: one call, one
transaction; writes take the write lock up front, reads never do (jobs/engine.py). Wording and
policy (what a duplicate is, which reason a person reads) belong to the callers.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, and_, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from daemon.jobs import engine as engine_mod
from daemon.jobs import paths
from daemon.jobs.engine import DatabaseUnavailable
from daemon.jobs.models import ACTIVE, IN_FLIGHT, TERMINAL, Job, JobState, Notice, Reservation
from daemon.jobs.reads import Reads, _load, load_job


class TransitionError(RuntimeError):
    """A guarded update matched no row: the job was not in the state the caller assumed."""


class TakenOver(TransitionError):
    """This node's claim on an in-flight job is gone (another node took it over while we were
    presumed dead): drop the job, write nothing more about it."""


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


class Store(Reads):
    def __init__(self, engine: Engine, node: str = ""):
        self.engine = engine
        self.fleet = engine_mod.is_server(engine)  # several nodes may share this table
        self.node = node
        self.shared: frozenset[str] = frozenset()  # names of the shared roots this node sees
        self._held: dict[int, int] = {}  # job id -> claim_no of the claims this process holds

    def set_node(self, name: str, shared: Iterable[str] = ()) -> None:
        """Who this process is in the fleet, and which shared folders it can upload from."""
        self.node, self.shared = name, frozenset(shared)

    @property
    def owner(self) -> str:
        """The owner of this node's node-local jobs: its name in a fleet, "" on SQLite."""
        return self.node if self.fleet else ""

    @classmethod
    def open(cls, url: str, migrate: bool = True, create: bool = True) -> Store:
        from sqlalchemy.exc import SQLAlchemyError

        try:
            engine = engine_mod.make_engine(url, create=create)
            if migrate:
                engine_mod.upgrade(engine)
        except (SQLAlchemyError, OSError) as exc:
            reason = getattr(exc, "orig", None) or getattr(exc, "strerror", None) or exc
            raise DatabaseUnavailable(
                f"cannot open the job database {engine_mod.mask_url(url)}: {reason} (check "
                f"[database] url and the folder's permissions)") from None
        return cls(engine)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _write(self, durable: bool = False) -> Iterator[Connection]:
        released: list[int] = []  # claims that end if (and only if) this transaction commits
        with engine_mod.write_tx(self.engine, durable=durable) as conn:
            conn.info[RELEASED] = released
            yield conn
        for job_id in released:
            self._held.pop(job_id, None)

    def _move(self, conn: Connection, job_id: int, from_states: Iterable[str], to: JobState,
              now: float, **values: Any) -> None:
        froms = [str(s) for s in from_states]
        q = update(Job).where(Job.id == job_id, Job.state.in_(froms))
        claim = self._held.get(job_id) if any(s in IN_FLIGHT for s in froms) else None
        if claim is not None:
            q = q.where(Job.node == self.node, Job.claim_no == claim)
        res = conn.execute(q.values(state=str(to), updated_at=now, **values))
        if res.rowcount != 1:
            row = conn.execute(select(Job.state, Job.node, Job.claim_no)
                               .where(Job.id == job_id)).first()
            if claim is not None and (row is None or (row.node, row.claim_no) != (
                    self.node, claim)):
                # Kept: every later write of this stale claim must fail the same way.
                raise TakenOver(
                    f"job {job_id}: claim {claim} of {self.node!r} was taken over (now "
                    f"{row.state if row else 'gone'}, claim "
                    f"{row.claim_no if row else '-'} of {row.node if row else None!r})")
            raise TransitionError(f"job {job_id}: expected state {'/'.join(froms)} for -> "
                                  f"{to}, found {row.state if row else None}")
        if claim is not None and to not in IN_FLIGHT:
            conn.info.get(RELEASED, []).append(job_id)

    def _ident(self, path: str, root: str, shared_name: str | None) -> tuple[str, str, str]:
        """(owner, watch, rel_path) naming one file whatever its version: a shared root's
        files by the share's name (every node mounts it elsewhere), node-local ones by node."""
        owner, watch = ("", shared_name) if shared_name is not None else (self.owner, root)
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

    # ---- watcher side ----------------------------------------------------------------------

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
        with self._write() as conn:
            known = conn.execute(select(Job.id, Job.state).where(
                *ident, *self._version(size, mtime_ns, shared)).order_by(Job.id)).first()
            if known is not None:
                state = JobState(known.state)
                return Seen(known.id, state, state == JobState.PENDING)
            active = conn.execute(select(Job.id, Job.state).where(
                *ident, Job.state.in_([JobState.PENDING, JobState.QUEUED]))
                .order_by(Job.id.desc()).limit(1)).first()
            if active is not None:
                # Still being written, or changed after it was queued: settle it again.
                self._move(conn, active.id, [active.state], JobState.PENDING, now,
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
            return Seen(row.id, JobState(row.state), row.state == JobState.PENDING)

    def skip_pending(self, path: str, now: float, reason: str, root: str | None = None,
                     shared_name: str | None = None) -> list[int]:
        """The file is gone while pending (settling or held): end its job with the reason."""
        where = self._where(path, root, shared_name) if root is not None else \
            [Job.path == paths.to_db(path), Job.owner.in_(("", self.owner))]
        with self._write() as conn:
            ids = list(conn.execute(select(Job.id).where(
                *where, Job.state == JobState.PENDING)).scalars())
            for job_id in ids:
                self._move(conn, job_id, [JobState.PENDING], JobState.SKIPPED, now,
                           last_error=reason, finished_at=now)
            return ids

    def hold(self, job_id: int, reason: str, now: float) -> None:
        """Keep a pending job pending, with the reason it waits."""
        with self._write() as conn:
            self._move(conn, job_id, [JobState.PENDING], JobState.PENDING, now, last_error=reason)

    def mark_ready(self, job_id: int, ready: Ready, now: float) -> bool:
        """pending -> queued with the facts the reservation needs. False when the file went back
        to a version another job of the same path already holds (the caller skips it)."""
        try:
            with self._write() as conn:
                version = {"size": ready.size, "mtime_ns": ready.mtime_ns}
                row = conn.execute(select(Job.watch, Job.root, Job.size, Job.mtime_ns)
                                   .where(Job.id == job_id)).first()
                if row is not None and row.watch != row.root:  # a shared root's job
                    same = row.size == ready.size and \
                        abs(row.mtime_ns - ready.mtime_ns) <= COARSE_NS
                    version = {} if same else {"size": ready.size,
                                               "mtime_ns": coarse(ready.mtime_ns)}
                self._move(conn, job_id, [JobState.PENDING], JobState.QUEUED, now,
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
        with self._write() as conn:
            self._move(conn, job_id, [JobState.PENDING], JobState.PENDING, now, **facts)

    # ---- worker side -----------------------------------------------------------------------

    def claim(self, now: float) -> Job | None:
        """Atomically take the next due queued job (queued -> reserved) for this node: the
        claim sets the holder and bumps claim_no, which guards every later write."""
        with self._write() as conn:
            if self.fleet:
                job = self._claim_server(conn, now)
            else:
                job_id = conn.execute(
                    select(Job.id).where(Job.state == JobState.QUEUED,
                                         Job.next_attempt_at <= now)
                    .order_by(Job.next_attempt_at, Job.id).limit(1)).scalar()
                if job_id is None:
                    return None
                self._move(conn, job_id, [JobState.QUEUED], JobState.RESERVED, now,
                           session_id=None, bytes_sent=0, attempts=Job.attempts + 1,
                           node=self.node, claim_no=Job.claim_no + 1)
                job = _load(conn, job_id)
        if job is not None:
            self._held[job.id] = job.claim_no
        return job

    def _claim_server(self, conn: Connection, now: float) -> Job | None:
        """One statement: nodes claiming at once skip each other's locked rows."""
        mine = or_(Job.owner == self.node, and_(Job.owner == "", Job.watch.in_(self.shared)))
        pick = (select(Job.id).where(Job.state == JobState.QUEUED, Job.next_attempt_at <= now,
                                     mine)
                .order_by(Job.next_attempt_at, Job.id).limit(1)
                .with_for_update(skip_locked=True).scalar_subquery())
        row = conn.execute(
            update(Job).where(Job.id == pick, Job.state == JobState.QUEUED)
            .values(state=str(JobState.RESERVED), node=self.node, claim_no=Job.claim_no + 1,
                    attempts=Job.attempts + 1, session_id=None, bytes_sent=0, updated_at=now)
            .returning(*Job.__table__.columns)).first()
        return load_job(row) if row is not None else None

    def record_reservation(self, job_id: int, session_id: str, session_group_id: str,
                           upload_url: str, expires_at: float, now: float) -> None:
        with self._write() as conn:
            conn.execute(update(Reservation).where(
                Reservation.job_id == job_id, Reservation.outcome == "active")
                .values(outcome="abandoned"))
            conn.execute(insert(Reservation).values(
                job_id=job_id, session_id=session_id, session_group_id=session_group_id,
                upload_url=upload_url, expires_at=expires_at, created_at=now, outcome="active"))
            self._move(conn, job_id, [JobState.RESERVED], JobState.RESERVED, now,
                       session_id=session_id)

    def reservation_ended(self, session_id: str, outcome: str) -> None:
        """lapsed (window ran out) | refused (the endpoint would not take it) | abandoned."""
        with self._write() as conn:
            conn.execute(update(Reservation).where(Reservation.session_id == session_id)
                         .values(outcome=outcome))

    def count_refusal(self, job_id: int, now: float) -> int:
        """One more capture refused for this job; returns how many in a row."""
        with self._write() as conn:
            self._move(conn, job_id, IN_FLIGHT, JobState(_state(conn, job_id)), now,
                       refusals=Job.refusals + 1)
            return int(conn.execute(select(Job.refusals).where(Job.id == job_id)).scalar_one())

    def reserve_again(self, job_id: int, now: float) -> None:
        """The window lapsed during the upload: uploading -> reserved, for a new reservation."""
        with self._write() as conn:
            self._move(conn, job_id, [JobState.UPLOADING], JobState.RESERVED, now,
                       session_id=None, bytes_sent=0)

    def start_upload(self, job_id: int, now: float) -> None:
        with self._write() as conn:
            self._move(conn, job_id, [JobState.RESERVED], JobState.UPLOADING, now, bytes_sent=0,
                       upload_started_at=now)

    def progress(self, job_id: int, sent: int, now: float) -> None:
        with self._write() as conn:
            self._move(conn, job_id, [JobState.UPLOADING], JobState.UPLOADING, now,
                       bytes_sent=sent)

    def finish(self, job_id: int, etag: str | None, now: float, note: str | None = None) -> None:
        # Durable: after-upload may move or delete the file right after this returns.
        with self._write(durable=True) as conn:
            session_id = conn.execute(select(Job.session_id).where(Job.id == job_id)).scalar()
            self._move(conn, job_id, [JobState.UPLOADING], JobState.DONE, now, etag=etag,
                       last_error=note, finished_at=now, bytes_sent=Job.size, refusals=0)
            conn.execute(update(Reservation).where(Reservation.session_id == session_id)
                         .values(outcome="used"))

    def requeue(self, job_id: int, from_states: Iterable[str], now: float, *, due: float,
                reason: str | None, count_attempt: bool = True) -> None:
        """Back to queued, due at `due`. A retry that was not the job's fault gives the
        attempt back (claim counted it)."""
        extra: dict[str, Any] = {} if count_attempt else {"attempts": Job.attempts - 1}
        with self._write() as conn:
            self._move(conn, job_id, from_states, JobState.QUEUED, now, next_attempt_at=due,
                       last_error=reason, **extra)
            if due <= now:
                engine_mod.notify_jobs(conn)

    def back_to_pending(self, job_id: int, from_states: Iterable[str], now: float,
                        reason: str) -> None:
        with self._write() as conn:
            self._move(conn, job_id, from_states, JobState.PENDING, now, last_error=reason,
                       session_id=None, attempts=Job.attempts - 1)

    def fail(self, job_id: int, from_states: Iterable[str], now: float, reason: str) -> None:
        with self._write() as conn:
            self._move(conn, job_id, from_states, JobState.FAILED, now, last_error=reason,
                       finished_at=now)

    def skip(self, job_id: int, from_states: Iterable[str], now: float, reason: str,
             **facts: Any) -> None:
        with self._write() as conn:
            self._move(conn, job_id, from_states, JobState.SKIPPED, now, last_error=reason,
                       finished_at=now, **facts)

    def recover(self, now: float) -> int:
        """At start: jobs a dead process left reserved/uploading go back to the queue. Their
        upload fields were never stored, so each is reserved afresh. In a fleet, only this
        node's own (others' wait for their node or its lease)."""
        with self._write() as conn:
            q = select(Job.id, Job.state).where(Job.state.in_(IN_FLIGHT))
            if self.fleet:
                q = q.where(Job.node == self.node)
            stuck = list(conn.execute(q))
            for row in stuck:
                self._move(conn, row.id, [row.state], JobState.QUEUED, now, next_attempt_at=now,
                           attempts=Job.attempts - 1,
                           last_error="the daemon stopped during this upload; trying again")
            ended = update(Reservation).where(Reservation.outcome == "active")
            if self.fleet:
                ended = ended.where(Reservation.job_id.in_([r.id for r in stuck]))
            conn.execute(ended.values(outcome="abandoned"))
            if stuck:
                engine_mod.notify_jobs(conn)
            return len(stuck)

    def set_archived(self, job_id: int, archived_path: str | None, note: str | None,
                     now: float) -> None:
        with self._write() as conn:
            self._move(conn, job_id, [JobState.DONE], JobState.DONE, now,
                       archived_path=None if archived_path is None else
                       paths.to_db(archived_path), last_error=note)

    def set_notice(self, name: str, message: str, until: float | None, now: float) -> None:
        with self._write() as conn:  # an upsert: several nodes may set the same notice
            stmt = engine_mod.insert_for(conn)(Notice).values(
                name=name, message=message, until=until, updated_at=now)
            conn.execute(stmt.on_conflict_do_update(index_elements=[Notice.name], set_={
                "message": message, "until": until, "updated_at": now}))

    def clear_notice(self, name: str) -> None:
        with self._write() as conn:
            conn.execute(delete(Notice).where(Notice.name == name))

    def retry(self, job_ids: Iterable[int] | None, now: float, force: bool = False) -> list[int]:
        """Operator's retry: failed (or the named failed/skipped) jobs back to the queue. A job
        that never got as far as being queued (e.g. refused as not a movie), or a forced one,
        goes back to pending, where the watcher settles it again (forced: without the movie
        check)."""
        with self._write() as conn:
            q = select(Job.id, Job.state)
            if job_ids is None:
                q = q.where(Job.state == JobState.FAILED)
            else:
                q = q.where(Job.id.in_(list(job_ids)),
                            Job.state.in_([JobState.FAILED, JobState.SKIPPED]))
            rows = list(conn.execute(q.add_columns(Job.athlete_id, Job.file_name)))
            for row in rows:
                to = JobState.QUEUED if row.file_name and not force else JobState.PENDING
                self._move(conn, row.id, [row.state], to, now, next_attempt_at=now, force=force,
                           attempts=0, refusals=0, last_error=None, finished_at=None)
            if rows:
                engine_mod.notify_jobs(conn)
            return [r.id for r in rows]


RELEASED = "uplift_released"  # conn.info key: claims a transaction ends


def _state(conn: Connection, job_id: int) -> str:
    return conn.execute(select(Job.state).where(Job.id == job_id)).scalar_one()


__all__ = ["ACTIVE", "TERMINAL", "DatabaseUnavailable", "JobState", "Ready", "Seen", "Store",
           "TakenOver", "TransitionError", "coarse"]
