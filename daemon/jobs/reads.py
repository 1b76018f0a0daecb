"""Read queries of the job table: plain (deferred) read transactions that never take the write
lock, so `status` and the console cannot hold up the daemon's writes."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, func, select

from daemon.jobs import engine as engine_mod
from daemon.jobs import paths
from daemon.jobs.models import Job, JobState, Notice, Reservation


def load_job(row: Any) -> Job:
    values = dict(row._mapping)
    values["path"] = paths.from_db(values["path"])
    return Job(**values)


def _load(conn: Connection, job_id: int) -> Job | None:
    row = conn.execute(select(*Job.__table__.columns).where(Job.id == job_id)).first()
    return load_job(row) if row is not None else None


class Reads:
    engine: Engine

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with engine_mod.read_tx(self.engine) as conn:
            yield conn

    def get(self, job_id: int) -> Job | None:
        with self._read() as conn:
            return _load(conn, job_id)

    def counts(self) -> dict[str, int]:
        with self._read() as conn:
            rows = conn.execute(select(Job.state, func.count()).group_by(Job.state))
            found = {state: n for state, n in rows}
        return {s.value: found.get(s.value, 0) for s in JobState}

    def jobs(self, states: Iterable[str] | None = None, newest: int | None = None) -> list[Job]:
        """Jobs in id order; with `newest`, only that many of the most recent."""
        with self._read() as conn:
            q = select(*Job.__table__.columns)
            if states is not None:
                q = q.where(Job.state.in_([str(s) for s in states]))
            if newest is not None:
                q = q.order_by(Job.id.desc()).limit(newest)
            rows = [load_job(row) for row in conn.execute(q)]
        return sorted(rows, key=lambda j: j.id)

    def jobs_at(self, path: str, states: Iterable[str]) -> list[Job]:
        with self._read() as conn:
            q = select(*Job.__table__.columns).where(
                Job.path == paths.to_db(path), Job.state.in_([str(s) for s in states]))
            return [load_job(row) for row in conn.execute(q.order_by(Job.id))]

    def twins(self, athlete_id: str, fingerprint: str, exclude: int,
              states: Iterable[str]) -> list[Job]:
        """Jobs of the same athlete holding the same video (size + fingerprint)."""
        with self._read() as conn:
            q = select(*Job.__table__.columns).where(
                Job.athlete_id == athlete_id, Job.fingerprint == fingerprint, Job.id != exclude,
                Job.state.in_([str(s) for s in states]))
            return [load_job(row) for row in conn.execute(q.order_by(Job.id))]

    def reservations(self, job_id: int) -> list[Reservation]:
        with self._read() as conn:
            q = select(*Reservation.__table__.columns).where(Reservation.job_id == job_id)
            return [Reservation(**row._mapping) for row in conn.execute(
                q.order_by(Reservation.id))]

    def notices(self) -> dict[str, dict[str, Any]]:
        with self._read() as conn:
            return {n.name: {"message": n.message, "until": n.until}
                    for n in conn.execute(select(Notice.name, Notice.message, Notice.until))}

    def pending_paths(self) -> list[str]:
        with self._read() as conn:
            return [paths.from_db(p) for p in conn.execute(
                select(Job.path).where(Job.state == JobState.PENDING)).scalars()]

    def known_versions(self) -> dict[str, tuple[int, int]]:
        """path -> (size, mtime_ns) of files that need nothing more from the watcher, so a
        rescan of a large tree costs a stat per file and no query."""
        with self._read() as conn:
            rows = conn.execute(select(Job.path, Job.size, Job.mtime_ns).where(
                Job.state != JobState.PENDING).order_by(Job.id))
            return {paths.from_db(path): (size, mtime) for path, size, mtime in rows}

    def next_due(self, now: float) -> float | None:
        with self._read() as conn:
            return conn.execute(select(func.min(Job.next_attempt_at)).where(
                Job.state == JobState.QUEUED, Job.next_attempt_at > now)).scalar()

    def last_upload_url(self) -> str | None:
        """The newest reservation's upload URL: where `check` finds the storage host."""
        with self._read() as conn:
            return conn.execute(select(Reservation.upload_url).order_by(
                Reservation.id.desc()).limit(1)).scalar()

    def is_forced(self, job_id: int) -> bool:
        with self._read() as conn:
            return bool(conn.execute(select(Job.force).where(Job.id == job_id)).scalar())
