"""The one module that queries the job table.

Every state change is a guarded UPDATE (`WHERE id = ? AND state = ?`); one that matches no row
raises TransitionError instead of passing silently. Transactions are short: one call, one
transaction. Connection settings live in jobs/engine.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from daemon.jobs.engine import make_engine, set_durable, upgrade
from daemon.jobs.models import ACTIVE, TERMINAL, Job, JobState, Notice, Reservation


class DatabaseUnavailable(Exception):
    """The job table cannot be opened (a missing folder, permissions, a locked or damaged
    file); the message says which database and why, for a person."""


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


class Store:
    def __init__(self, engine: Engine):
        self.engine = engine

    @classmethod
    def open(cls, url: str, migrate: bool = True) -> Store:
        from sqlalchemy.exc import SQLAlchemyError

        try:
            engine = make_engine(url)
            if migrate:
                upgrade(engine)
        except (SQLAlchemyError, OSError) as exc:
            reason = getattr(exc, "orig", None) or getattr(exc, "strerror", None) or exc
            raise DatabaseUnavailable(f"cannot open the job database {url}: {reason} (check "
                                      f"[database] url and the folder's permissions)") from None
        return cls(engine)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _tx(self, durable: bool = False) -> Iterator[Connection]:
        if not durable:
            with self.engine.begin() as conn:
                yield conn
            return
        with self.engine.connect() as conn:
            set_durable(conn, True)
            try:
                with conn.begin():
                    yield conn
            finally:
                set_durable(conn, False)

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
        with self._tx() as conn:
            known = conn.execute(select(Job.id, Job.state).where(
                Job.path == path, Job.size == size, Job.mtime_ns == mtime_ns)).first()
            if known is not None:
                state = JobState(known.state)
                return Seen(known.id, state, state == JobState.PENDING)
            active = conn.execute(select(Job.id, Job.state).where(
                Job.path == path, Job.state.in_([JobState.PENDING, JobState.QUEUED]))
                .order_by(Job.id.desc()).limit(1)).first()
            if active is not None:
                # Still being written, or changed after it was queued: settle it again.
                self._move(conn, active.id, [active.state], JobState.PENDING, now,
                           size=size, mtime_ns=mtime_ns, last_error=None)
                return Seen(active.id, JobState.PENDING, True)
            busy = conn.execute(select(Job.id, Job.state).where(
                Job.path == path, Job.state.in_([JobState.RESERVED, JobState.UPLOADING]))
                .limit(1)).first()
            if busy is not None:
                # The worker re-checks size and mtime after the upload and re-settles it.
                return Seen(busy.id, JobState(busy.state), False, exact=False)
            job_id = conn.execute(insert(Job).values(
                path=path, root=root, size=size, mtime_ns=mtime_ns, state=str(JobState.PENDING),
                attempts=0, next_attempt_at=0.0, bytes_sent=0, created_at=now, updated_at=now,
                force=False,
            )).inserted_primary_key[0]
            return Seen(job_id, JobState.PENDING, True)

    def skip_pending(self, path: str, now: float, reason: str) -> list[int]:
        """The file is gone while pending (settling or held): end its job with the reason."""
        with self._tx() as conn:
            ids = list(conn.execute(select(Job.id).where(
                Job.path == path, Job.state == JobState.PENDING)).scalars())
            for job_id in ids:
                self._move(conn, job_id, [JobState.PENDING], JobState.SKIPPED, now,
                           last_error=reason, finished_at=now)
            return ids

    def hold(self, job_id: int, reason: str, now: float) -> None:
        """Keep a pending job pending, with the reason it waits."""
        with self._tx() as conn:
            self._move(conn, job_id, [JobState.PENDING], JobState.PENDING, now, last_error=reason)

    def mark_ready(self, job_id: int, ready: Ready, now: float,
                   allow_duplicates: bool = False) -> JobState:
        """pending -> queued with the facts the reservation needs; skipped instead when the same
        video is already uploaded (or on its way) for the same athlete."""
        try:
            with self._tx() as conn:
                twin = None if allow_duplicates or ready.fingerprint is None else conn.execute(
                    select(Job.id, Job.path, Job.state).where(
                        Job.athlete_id == ready.athlete_id, Job.fingerprint == ready.fingerprint,
                        Job.id != job_id, Job.state.in_([JobState.QUEUED, JobState.RESERVED,
                                                         JobState.UPLOADING, JobState.DONE]))
                    .order_by(Job.id).limit(1)).first()
                if twin is not None:
                    verb = "uploaded" if twin.state == JobState.DONE else "being uploaded"
                    self._move(conn, job_id, [JobState.PENDING], JobState.SKIPPED, now,
                               size=ready.size, mtime_ns=ready.mtime_ns,
                               athlete_id=ready.athlete_id, fingerprint=ready.fingerprint,
                               finished_at=now,
                               last_error=f"same video as job {twin.id} ({twin.path}), already "
                                          f"{verb} for this athlete; set [upload] "
                                          f"allow_duplicates = true to upload copies")
                    return JobState.SKIPPED
                self._move(conn, job_id, [JobState.PENDING], JobState.QUEUED, now,
                           fingerprint=ready.fingerprint,
                           size=ready.size, mtime_ns=ready.mtime_ns, athlete_id=ready.athlete_id,
                           session_group_id=ready.session_group_id, file_name=ready.file_name,
                           capture_time=ready.capture_time,
                           camera_configuration=ready.camera_configuration,
                           movement_attributes=ready.movement_attributes,
                           last_error=None, next_attempt_at=now)
            return JobState.QUEUED
        except IntegrityError:
            # The file went back to a version another job already holds.
            with self._tx() as conn:
                twin = conn.execute(select(Job.id).where(
                    Job.path == _path_of(conn, job_id), Job.size == ready.size,
                    Job.mtime_ns == ready.mtime_ns)).scalar()
                self._move(conn, job_id, [JobState.PENDING], JobState.SKIPPED, now,
                           finished_at=now, last_error=f"same file as job {twin}")
            return JobState.SKIPPED

    def pending_paths(self) -> list[str]:
        with self._tx() as conn:
            return list(conn.execute(
                select(Job.path).where(Job.state == JobState.PENDING)).scalars())

    def known_versions(self) -> dict[str, tuple[int, int]]:
        """path -> (size, mtime_ns) of files that need nothing more from the watcher, so a
        rescan of a large tree costs a stat per file and no query."""
        with self._tx() as conn:
            rows = conn.execute(select(Job.path, Job.size, Job.mtime_ns).where(
                Job.state != JobState.PENDING).order_by(Job.id))
            return {path: (size, mtime) for path, size, mtime in rows}

    # ---- worker side -----------------------------------------------------------------------

    def claim(self, now: float) -> Job | None:
        """Atomically take the next due queued job (queued -> reserved)."""
        with self._tx() as conn:
            job_id = conn.execute(
                select(Job.id).where(Job.state == JobState.QUEUED, Job.next_attempt_at <= now)
                .order_by(Job.next_attempt_at, Job.id).limit(1)
                .with_for_update(skip_locked=True)).scalar()
            if job_id is None:
                return None
            self._move(conn, job_id, [JobState.QUEUED], JobState.RESERVED, now,
                       session_id=None, bytes_sent=0, attempts=Job.attempts + 1)
            return _load(conn, job_id)

    def next_due(self, now: float) -> float | None:
        with self._tx() as conn:
            return conn.execute(select(func.min(Job.next_attempt_at)).where(
                Job.state == JobState.QUEUED, Job.next_attempt_at > now)).scalar()

    def record_reservation(self, job_id: int, session_id: str, session_group_id: str,
                           upload_url: str, expires_at: float, now: float) -> None:
        with self._tx() as conn:
            conn.execute(update(Reservation).where(
                Reservation.job_id == job_id, Reservation.outcome == "active")
                .values(outcome="abandoned"))
            conn.execute(insert(Reservation).values(
                job_id=job_id, session_id=session_id, session_group_id=session_group_id,
                upload_url=upload_url, expires_at=expires_at, created_at=now, outcome="active"))
            self._move(conn, job_id, [JobState.RESERVED], JobState.RESERVED, now,
                       session_id=session_id)

    def reservation_lapsed(self, session_id: str) -> None:
        with self._tx() as conn:
            conn.execute(update(Reservation).where(Reservation.session_id == session_id)
                         .values(outcome="lapsed"))

    def reserve_again(self, job_id: int, now: float) -> None:
        """The window lapsed during the upload: uploading -> reserved, for a new reservation."""
        with self._tx() as conn:
            self._move(conn, job_id, [JobState.UPLOADING], JobState.RESERVED, now,
                       session_id=None, bytes_sent=0)

    def start_upload(self, job_id: int, now: float) -> None:
        with self._tx() as conn:
            self._move(conn, job_id, [JobState.RESERVED], JobState.UPLOADING, now, bytes_sent=0,
                       upload_started_at=now)

    def progress(self, job_id: int, sent: int, now: float) -> None:
        with self._tx() as conn:
            self._move(conn, job_id, [JobState.UPLOADING], JobState.UPLOADING, now,
                       bytes_sent=sent)

    def finish(self, job_id: int, etag: str | None, now: float, note: str | None = None) -> None:
        # Durable: after-upload may move or delete the file right after this returns.
        with self._tx(durable=True) as conn:
            session_id = conn.execute(select(Job.session_id).where(Job.id == job_id)).scalar()
            self._move(conn, job_id, [JobState.UPLOADING], JobState.DONE, now, etag=etag,
                       last_error=note, finished_at=now, bytes_sent=Job.size)
            conn.execute(update(Reservation).where(Reservation.session_id == session_id)
                         .values(outcome="used"))
            # An earlier copy of this path that failed (e.g. an unfinished recording) is moot.
            path = _path_of(conn, job_id)
            conn.execute(update(Job).where(
                Job.path == path, Job.state == JobState.FAILED, Job.id != job_id).values(
                state=str(JobState.SKIPPED), updated_at=now, finished_at=now,
                last_error=f"replaced by a newer copy of the file (job {job_id}), which was "
                           f"uploaded"))

    def requeue(self, job_id: int, from_states: Iterable[str], now: float, *, due: float,
                reason: str | None, count_attempt: bool = True) -> None:
        """Back to queued, due at `due`. A retry that was not the job's fault gives the
        attempt back (claim counted it)."""
        extra: dict[str, Any] = {} if count_attempt else {"attempts": Job.attempts - 1}
        with self._tx() as conn:
            self._move(conn, job_id, from_states, JobState.QUEUED, now, next_attempt_at=due,
                       last_error=reason, **extra)

    def back_to_pending(self, job_id: int, from_states: Iterable[str], now: float,
                        reason: str) -> None:
        with self._tx() as conn:
            self._move(conn, job_id, from_states, JobState.PENDING, now, last_error=reason,
                       session_id=None, attempts=Job.attempts - 1)

    def fail(self, job_id: int, from_states: Iterable[str], now: float, reason: str) -> None:
        with self._tx() as conn:
            self._move(conn, job_id, from_states, JobState.FAILED, now, last_error=reason,
                       finished_at=now)

    def skip(self, job_id: int, from_states: Iterable[str], now: float, reason: str) -> None:
        with self._tx() as conn:
            self._move(conn, job_id, from_states, JobState.SKIPPED, now, last_error=reason,
                       finished_at=now)

    def recover(self, now: float) -> int:
        """At start: jobs a dead process left reserved/uploading go back to the queue. Their
        upload fields were never stored, so each is reserved afresh."""
        with self._tx() as conn:
            stuck = list(conn.execute(select(Job.id, Job.state).where(
                Job.state.in_([JobState.RESERVED, JobState.UPLOADING]))))
            for row in stuck:
                self._move(conn, row.id, [row.state], JobState.QUEUED, now, next_attempt_at=now,
                           attempts=Job.attempts - 1,
                           last_error="the daemon stopped during this upload; trying again")
            conn.execute(update(Reservation).where(Reservation.outcome == "active")
                         .values(outcome="abandoned"))
            return len(stuck)

    def set_archived(self, job_id: int, archived_path: str | None, note: str | None,
                     now: float) -> None:
        with self._tx() as conn:
            self._move(conn, job_id, [JobState.DONE], JobState.DONE, now,
                       archived_path=archived_path, last_error=note)

    def set_notice(self, name: str, message: str, until: float | None, now: float) -> None:
        with self._tx() as conn:
            conn.execute(delete(Notice).where(Notice.name == name))
            conn.execute(insert(Notice).values(name=name, message=message, until=until,
                                               updated_at=now))

    def clear_notice(self, name: str) -> None:
        with self._tx() as conn:
            conn.execute(delete(Notice).where(Notice.name == name))

    def notices(self) -> dict[str, dict[str, Any]]:
        with self._tx() as conn:
            return {n.name: {"message": n.message, "until": n.until}
                    for n in conn.execute(select(Notice.name, Notice.message, Notice.until))}

    def retry(self, job_ids: Iterable[int] | None, now: float, force: bool = False) -> list[int]:
        """Operator's retry: failed (or the named failed/skipped) jobs back to the queue. A job
        that never got as far as being queued (e.g. refused as not a movie), or a forced one,
        goes back to pending, where the watcher settles it again (forced: without the movie
        check)."""
        with self._tx() as conn:
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
                           attempts=0, last_error=None, finished_at=None)
            return [r.id for r in rows]

    def is_forced(self, job_id: int) -> bool:
        with self._tx() as conn:
            return bool(conn.execute(select(Job.force).where(Job.id == job_id)).scalar())

    # ---- reading ---------------------------------------------------------------------------

    def get(self, job_id: int) -> Job | None:
        with self._tx() as conn:
            return _load(conn, job_id)

    def counts(self) -> dict[str, int]:
        with self._tx() as conn:
            rows = conn.execute(select(Job.state, func.count()).group_by(Job.state))
            found = {state: n for state, n in rows}
        return {s.value: found.get(s.value, 0) for s in JobState}

    def jobs(self, states: Iterable[str] | None = None, newest: int | None = None) -> list[Job]:
        """Jobs in id order; with `newest`, only that many of the most recent."""
        with self._tx() as conn:
            q = select(*Job.__table__.columns)
            if states is not None:
                q = q.where(Job.state.in_([str(s) for s in states]))
            if newest is not None:
                q = q.order_by(Job.id.desc()).limit(newest)
            rows = [Job(**row._mapping) for row in conn.execute(q)]
        return sorted(rows, key=lambda j: j.id)

    def reservations(self, job_id: int) -> list[Reservation]:
        with self._tx() as conn:
            q = select(*Reservation.__table__.columns).where(Reservation.job_id == job_id)
            return [Reservation(**row._mapping) for row in conn.execute(
                q.order_by(Reservation.id))]


def _load(conn: Connection, job_id: int) -> Job | None:
    row = conn.execute(select(*Job.__table__.columns).where(Job.id == job_id)).first()
    return Job(**row._mapping) if row is not None else None


def _path_of(conn: Connection, job_id: int) -> str:
    return conn.execute(select(Job.path).where(Job.id == job_id)).scalar_one()


__all__ = ["ACTIVE", "TERMINAL", "JobState", "Ready", "Seen", "Store", "TransitionError"]
