"""The one gateway to the job table: transitions here, read queries in reads.py.

Every state change is a guarded UPDATE (`WHERE id = ? AND state IN (...)`); one that matches no
row raises TransitionError instead of passing silently. Transactions are short: one call, one
transaction; writes take the write lock up front, reads never do (jobs/engine.py). Wording and
policy (what a duplicate is, which reason a person reads) belong to the callers.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from daemon.jobs import engine as engine_mod
from daemon.jobs import paths
from daemon.jobs.engine import DatabaseUnavailable
from daemon.jobs.models import ACTIVE, IN_FLIGHT, TERMINAL, Job, JobState, Notice, Reservation
from daemon.jobs.reads import Reads, _load


class TransitionError(RuntimeError):
    """A guarded update matched no row: the job was not in the state the caller assumed."""


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
    def __init__(self, engine: Engine):
        self.engine = engine

    @classmethod
    def open(cls, url: str, migrate: bool = True) -> Store:
        from sqlalchemy.exc import SQLAlchemyError

        try:
            engine = engine_mod.make_engine(url)
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
        with engine_mod.write_tx(self.engine, durable=durable) as conn:
            yield conn

    def _move(self, conn: Connection, job_id: int, from_states: Iterable[str], to: JobState,
              now: float, **values: Any) -> None:
        froms = [str(s) for s in from_states]
        res = conn.execute(
            update(Job).where(Job.id == job_id, Job.state.in_(froms))
            .values(state=str(to), updated_at=now, **values))
        if res.rowcount != 1:
            current = conn.execute(select(Job.state).where(Job.id == job_id)).scalar()
            raise TransitionError(
                f"job {job_id}: expected state {'/'.join(froms)} for -> {to}, found {current}")

    # ---- watcher side ----------------------------------------------------------------------

    def observe(self, path: str, root: str, size: int, mtime_ns: int, now: float) -> Seen:
        """Record that `path` exists with this size and mtime."""
        stored = paths.to_db(path)
        with self._write() as conn:
            known = conn.execute(select(Job.id, Job.state).where(
                Job.path == stored, Job.size == size, Job.mtime_ns == mtime_ns)).first()
            if known is not None:
                state = JobState(known.state)
                return Seen(known.id, state, state == JobState.PENDING)
            active = conn.execute(select(Job.id, Job.state).where(
                Job.path == stored, Job.state.in_([JobState.PENDING, JobState.QUEUED]))
                .order_by(Job.id.desc()).limit(1)).first()
            if active is not None:
                # Still being written, or changed after it was queued: settle it again.
                self._move(conn, active.id, [active.state], JobState.PENDING, now,
                           size=size, mtime_ns=mtime_ns, last_error=None)
                return Seen(active.id, JobState.PENDING, True)
            busy = conn.execute(select(Job.id, Job.state).where(
                Job.path == stored, Job.state.in_(IN_FLIGHT)).limit(1)).first()
            if busy is not None:
                # The worker re-checks size and mtime after the upload and re-settles it.
                return Seen(busy.id, JobState(busy.state), False, exact=False)
            job_id = conn.execute(insert(Job).values(
                path=stored, root=root, size=size, mtime_ns=mtime_ns,
                state=str(JobState.PENDING), attempts=0, refusals=0, next_attempt_at=0.0,
                bytes_sent=0, created_at=now, updated_at=now, force=False,
            )).inserted_primary_key[0]
            return Seen(job_id, JobState.PENDING, True)

    def skip_pending(self, path: str, now: float, reason: str) -> list[int]:
        """The file is gone while pending (settling or held): end its job with the reason."""
        with self._write() as conn:
            ids = list(conn.execute(select(Job.id).where(
                Job.path == paths.to_db(path), Job.state == JobState.PENDING)).scalars())
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
                self._move(conn, job_id, [JobState.PENDING], JobState.QUEUED, now,
                           fingerprint=ready.fingerprint,
                           size=ready.size, mtime_ns=ready.mtime_ns, athlete_id=ready.athlete_id,
                           session_group_id=ready.session_group_id, file_name=ready.file_name,
                           capture_time=ready.capture_time,
                           camera_configuration=ready.camera_configuration,
                           movement_attributes=ready.movement_attributes,
                           last_error=None, next_attempt_at=now)
            return True
        except IntegrityError:
            return False

    def record_facts(self, job_id: int, now: float, **facts: Any) -> None:
        """Facts found while settling a job that will not be queued (e.g. its fingerprint)."""
        with self._write() as conn:
            self._move(conn, job_id, [JobState.PENDING], JobState.PENDING, now, **facts)

    # ---- worker side -----------------------------------------------------------------------

    def claim(self, now: float) -> Job | None:
        """Atomically take the next due queued job (queued -> reserved)."""
        with self._write() as conn:
            job_id = conn.execute(
                select(Job.id).where(Job.state == JobState.QUEUED, Job.next_attempt_at <= now)
                .order_by(Job.next_attempt_at, Job.id).limit(1)
                .with_for_update(skip_locked=True)).scalar()
            if job_id is None:
                return None
            self._move(conn, job_id, [JobState.QUEUED], JobState.RESERVED, now,
                       session_id=None, bytes_sent=0, attempts=Job.attempts + 1)
            return _load(conn, job_id)

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
        upload fields were never stored, so each is reserved afresh."""
        with self._write() as conn:
            stuck = list(conn.execute(select(Job.id, Job.state).where(Job.state.in_(IN_FLIGHT))))
            for row in stuck:
                self._move(conn, row.id, [row.state], JobState.QUEUED, now, next_attempt_at=now,
                           attempts=Job.attempts - 1,
                           last_error="the daemon stopped during this upload; trying again")
            conn.execute(update(Reservation).where(Reservation.outcome == "active")
                         .values(outcome="abandoned"))
            return len(stuck)

    def set_archived(self, job_id: int, archived_path: str | None, note: str | None,
                     now: float) -> None:
        with self._write() as conn:
            self._move(conn, job_id, [JobState.DONE], JobState.DONE, now,
                       archived_path=None if archived_path is None else
                       paths.to_db(archived_path), last_error=note)

    def set_notice(self, name: str, message: str, until: float | None, now: float) -> None:
        with self._write() as conn:
            conn.execute(delete(Notice).where(Notice.name == name))
            conn.execute(insert(Notice).values(name=name, message=message, until=until,
                                               updated_at=now))

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
            return [r.id for r in rows]


def _state(conn: Connection, job_id: int) -> str:
    return conn.execute(select(Job.state).where(Job.id == job_id)).scalar_one()


__all__ = ["ACTIVE", "TERMINAL", "DatabaseUnavailable", "JobState", "Ready", "Seen", "Store",
           "TransitionError"]
