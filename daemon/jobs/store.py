"""The one gateway to the job table: transitions here, read queries in reads.py.

Every state change is a guarded UPDATE (`WHERE id = ? AND state IN (...)`); one that matches no
row raises TransitionError instead of passing silently. A write of an in-flight job is also
guarded by the claim this process holds (id, node, claim_no): when another node took the job
over meanwhile, it changes nothing and raises TakenOver. Transactions are short: one call, one
transaction; writes take the write lock up front, reads never do (jobs/engine.py). Wording and
policy (what a duplicate is, which reason a person reads) belong to the callers.

`Store` is put together from one part per side, all in this package: the guarded update
(guard.py), the watcher's transitions (watcher_writes.py), the worker's (worker_writes.py);
opening the database, notices and the operator's retry are here.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import delete, select

from daemon.jobs import engine as engine_mod
from daemon.jobs import schema
from daemon.jobs.engine import DatabaseUnavailable
from daemon.jobs.guard import TakenOver, TransitionError
from daemon.jobs.models import ACTIVE, TERMINAL, Job, JobState, Notice
from daemon.jobs.watcher_writes import Ready, Seen, WatcherWrites, coarse
from daemon.jobs.worker_writes import WorkerWrites


class Store(WatcherWrites, WorkerWrites):
    """The job table's gateway: `Store.open(url)`, then reads (reads.py) and guarded writes."""

    @classmethod
    def open(cls, url: str, migrate: bool = False, create: bool = True,
             need: str | None = None) -> Store:
        """`migrate`: only the daemon (`run`) and `db upgrade`; everything else opens the table
        as it is and refuses, in one line, one older than `need` (jobs/schema.py)."""
        from sqlalchemy.exc import SQLAlchemyError

        try:
            engine = engine_mod.make_engine(url, create=create)
            # An empty database has nothing running on it: any command may lay out the table.
            if migrate or schema.check(engine, need) is None:
                engine_mod.upgrade(engine)
        except (SQLAlchemyError, OSError) as exc:
            reason = getattr(exc, "orig", None) or getattr(exc, "strerror", None) or exc
            hint = "the folder's permissions" if url.startswith("sqlite") else \
                "that the database server is running and reachable"
            raise DatabaseUnavailable(
                f"cannot open the job database {engine_mod.mask_url(url)}: {reason} (check "
                f"[database] url and {hint})") from None
        return cls(engine)

    def close(self) -> None:
        self.engine.dispose()

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
        # `retry` runs on a table the service may not have upgraded yet: reset only the
        # counters that table has (lapses came with 0006).
        counters = {"refusals": 0, **({"lapses": 0} if schema.has(self.engine, "0006") else {})}
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
                           attempts=0, last_error=None, finished_at=None, **counters)
            if rows:
                engine_mod.notify_jobs(conn)
            return [r.id for r in rows]


__all__ = ["ACTIVE", "TERMINAL", "DatabaseUnavailable", "JobState", "Ready", "Seen", "Store",
           "TakenOver", "TransitionError", "coarse"]
