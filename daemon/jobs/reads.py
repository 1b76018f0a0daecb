"""Read queries of the job table: plain (deferred) read transactions that never take the write
lock, so `status` and the console cannot hold up the daemon's writes."""

from __future__ import annotations

import os
import weakref
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, and_, func, inspect, or_, select

from daemon.jobs import engine as engine_mod
from daemon.jobs import paths
from daemon.jobs.fleet import parse_identity
from daemon.jobs.guard import ClaimGuard
from daemon.jobs.left import known_clause
from daemon.jobs.models import Job, JobState, Node, Notice, Reservation

# The job table's columns as this database has them, per engine: a command reads a table the
# service has not upgraded yet (columns added later are simply absent, read as None).
_COLUMNS: weakref.WeakKeyDictionary[Engine, list[Any]] = weakref.WeakKeyDictionary()


def job_columns(conn: Connection) -> list[Any]:
    """The model's columns that the table has: all of them once it is at this code's head."""
    found = _COLUMNS.get(conn.engine)
    if found is None:
        have = {c["name"] for c in inspect(conn).get_columns(Job.__tablename__)}
        found = [c for c in Job.__table__.columns if c.name in have]
        _COLUMNS[conn.engine] = found
    return found


def load_job(row: Any) -> Job:
    values = dict(row._mapping)
    values["path"] = paths.from_db(values["path"])
    return Job(**values)


def _load(conn: Connection, job_id: int) -> Job | None:
    row = conn.execute(select(*job_columns(conn)).where(Job.id == job_id)).first()
    return load_job(row) if row is not None else None


class Reads:
    """The Store's reads; who "this node" is (its jobs, the watches not there) is its guard's."""

    engine: Engine
    guard: ClaimGuard

    def db_now(self) -> float:
        """Epoch seconds by the database's clock (PostgreSQL), else this machine's."""
        with self._read() as conn:
            return engine_mod.db_now(conn)

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

    def jobs(self, states: Iterable[str] | None = None, newest: int | None = None,
             node: str | None = None) -> list[Job]:
        """Jobs in id order; with `newest`, only that many of the most recent; with `node`,
        those it holds or uploaded, or that wait for it (its node-local ones)."""
        with self._read() as conn:
            q = select(*job_columns(conn)).where(*_of_node(node))
            if states is not None:
                q = q.where(Job.state.in_([str(s) for s in states]))
            if newest is not None:
                q = q.order_by(Job.id.desc()).limit(newest)
            rows = [load_job(row) for row in conn.execute(q)]
        return sorted(rows, key=lambda j: j.id)

    def listing(self, per_state: int, skipped_since: float, node: str | None = None
                ) -> tuple[list[Job], dict[str, int]]:
        """`status`'s default listing: the newest `per_state` jobs of each state (skipped
        ones only if set aside since `skipped_since`), in id order, and how many jobs of each
        state there are (with `node`, as in `jobs`): a few small queries whatever the table's
        size."""
        found: list[Job] = []
        with self._read() as conn:
            totals = dict(conn.execute(select(Job.state, func.count()).where(*_of_node(node))
                                       .group_by(Job.state)).all())
            for state in JobState:
                if not totals.get(state.value):
                    continue
                q = select(*job_columns(conn)).where(Job.state == state, *_of_node(node))
                if state is JobState.SKIPPED:
                    q = q.where(Job.updated_at >= skipped_since)
                found += [load_job(r) for r in conn.execute(
                    q.order_by(Job.id.desc()).limit(per_state))]
        return sorted(found, key=lambda j: j.id), \
            {s.value: int(totals.get(s.value, 0)) for s in JobState}

    def earlier_uploads(self, jobs: Iterable[Job]) -> dict[int, tuple[int, str | None]]:
        """For each job, the newest earlier job of the same file that was uploaded (done): a
        file changed after its upload is a new capture, and `status` names the one before.
        One query per call (the caller passes a listing or a batch)."""
        ids = [j.id for j in jobs]
        if not ids:
            return {}
        e = Job.__table__.alias("e")
        j = Job.__table__.alias("j")
        newest = select(func.max(e.c.id)).where(
            e.c.owner == j.c.owner, e.c.watch == j.c.watch, e.c.rel_path == j.c.rel_path,
            # The state through a function: without table statistics SQLite would otherwise
            # walk every done row by the (state, id) index instead of the file identity's.
            e.c.id < j.c.id, func.coalesce(e.c.state, "") == JobState.DONE).scalar_subquery()
        with self._read() as conn:
            pairs = {row[0]: row[1] for row in conn.execute(
                select(j.c.id, newest).where(j.c.id.in_(ids))) if row[1] is not None}
            if not pairs:
                return {}
            sessions = dict(conn.execute(select(Job.id, Job.session_id).where(
                Job.id.in_(set(pairs.values())))).all())
        return {job_id: (earlier, sessions.get(earlier)) for job_id, earlier in pairs.items()}

    def each_job(self, states: Iterable[str] | None = None, node: str | None = None,
                 batch: int = 500) -> Iterator[Job]:
        """Every job in id order, read `batch` at a time (one short read transaction each), so
        `status --all` streams a table of any size in little memory."""
        after = 0
        while True:
            with self._read() as conn:
                q = select(*job_columns(conn)).where(Job.id > after, *_of_node(node))
                if states is not None:
                    q = q.where(Job.state.in_([str(s) for s in states]))
                rows = [load_job(r) for r in conn.execute(q.order_by(Job.id).limit(batch))]
            yield from rows
            if len(rows) < batch:
                return
            after = rows[-1].id

    def jobs_at(self, path: str, states: Iterable[str]) -> list[Job]:
        with self._read() as conn:
            q = select(*job_columns(conn)).where(
                Job.path == paths.to_db(path), Job.owner.in_(("", self.guard.owner)),
                Job.state.in_([str(s) for s in states]))
            return [load_job(row) for row in conn.execute(q.order_by(Job.id))]

    def twins(self, athlete_id: str, fingerprint: str, exclude: int,
              states: Iterable[str]) -> list[Job]:
        """Jobs of the same athlete holding the same video (size + fingerprint)."""
        with self._read() as conn:
            q = select(*job_columns(conn)).where(
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

    def pending_paths(self, roots: Mapping[str, str] | None = None) -> list[str]:
        """Paths of pending jobs; with `roots` (watch identity -> this node's root, see
        shares.watch_roots), those of this node's folders, at this node's paths."""
        with self._read() as conn:
            q = select(Job.path, Job.watch, Job.rel_path, Job.owner).where(
                Job.state == JobState.PENDING)
            return list(_local(conn.execute(q), roots, self.guard.owner))

    def known_versions(self, roots: Mapping[str, str] | None = None
                       ) -> Iterator[tuple[str, int, int]]:
        """(path, size, mtime_ns) of files that need nothing more from the watcher, so a
        rescan of a large tree costs a stat per file and no query; streamed, since the table
        holds every file ever uploaded. `roots`: as above."""
        with self._read() as conn:
            rows = conn.execution_options(yield_per=1000).execute(select(
                Job.path, Job.watch, Job.rel_path, Job.owner, Job.size, Job.mtime_ns).where(
                known_clause()).order_by(Job.id))
            for row in rows:
                if _ours(row, roots, self.guard.owner):
                    yield next(_local([row], roots, self.guard.owner)), row.size, row.mtime_ns

    def nodes(self, now: float, lease: float) -> list[dict[str, Any]]:
        """The fleet's nodes with their last heartbeat; alive = beat within the lease (`now`
        by the database's clock), stopped = signed off at a clean stop."""
        with self._read() as conn:
            rows = list(conn.execute(select(Node.name, Node.heartbeat_at, Node.host)
                                     .order_by(Node.name)))
        out = []
        for n in rows:
            ident = parse_identity(n.host)
            stopped = bool(ident.get("stopped"))
            out.append({"name": n.name, "heartbeat_at": n.heartbeat_at,
                        "alive": not stopped and n.heartbeat_at >= now - lease,
                        "stopped": stopped, "host": ident.get("host") or None})
        return out

    def next_due(self, now: float) -> float | None:
        with self._read() as conn:
            return conn.execute(select(func.min(Job.next_attempt_at)).where(
                Job.state == JobState.QUEUED, Job.next_attempt_at > now,
                self.guard.mine())).scalar()

    def any_due(self, now: float) -> bool:
        """A queued job is due now (the index on state, next_attempt_at answers it)."""
        with self._read() as conn:
            return conn.execute(select(Job.id).where(
                Job.state == JobState.QUEUED, Job.next_attempt_at <= now, self.guard.mine())
                .limit(1)).first() is not None

    def last_upload_at(self) -> float | None:
        with self._read() as conn:
            return conn.execute(select(func.max(Job.finished_at)).where(
                Job.state == JobState.DONE)).scalar()

    def day_counts(self, since: float) -> tuple[dict[str, int], list[tuple[str, str]]]:
        """Jobs touched since `since`, per state, and the failed ones with their reasons."""
        with self._read() as conn:
            counts = {state: n for state, n in conn.execute(
                select(Job.state, func.count()).where(Job.updated_at >= since)
                .group_by(Job.state))}
            failed = [(paths.readable(paths.from_db(p)), r or "") for p, r in conn.execute(
                select(Job.path, Job.last_error).where(
                    Job.state == JobState.FAILED, Job.updated_at >= since).order_by(Job.id))]
        return counts, failed

    def last_upload_url(self) -> str | None:
        """The newest reservation's upload URL: where `check` finds the storage host."""
        with self._read() as conn:
            return conn.execute(select(Reservation.upload_url).order_by(
                Reservation.id.desc()).limit(1)).scalar()

    def is_forced(self, job_id: int) -> bool:
        with self._read() as conn:
            return bool(conn.execute(select(Job.force).where(Job.id == job_id)).scalar())


def _of_node(node: str | None) -> list[Any]:
    """Jobs a node holds or uploaded, or that wait for it (its node-local ones)."""
    if node is None:
        return []
    return [or_(Job.node == node, and_(Job.node.is_(None), Job.owner == node))]


def _ours(row: Any, roots: Mapping[str, str] | None, owner: str) -> bool:
    """A node-local folder of another node may have the same path as one of ours."""
    return roots is None or (row.watch in roots and row.owner in ("", owner))


def _local(rows: Iterable[Any], roots: Mapping[str, str] | None, owner: str) -> Iterator[str]:
    """Each row's path as this node sees it: a shared file at its own mount of the share."""
    for row in rows:
        if roots is None:
            yield paths.from_db(row.path)
        elif _ours(row, roots, owner):
            yield os.path.join(roots[row.watch], paths.from_db(row.rel_path))
