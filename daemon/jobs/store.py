"""The one gateway to the job table: transitions here, read queries in reads.py.

Every state change is a guarded UPDATE (`WHERE id = ? AND state IN (...)`); one that matches no
row raises TransitionError instead of passing silently. A write of an upload carries the
claim that upload was given (models.Claim: id, node, claim_no) and is guarded by it: when the
job was taken over meanwhile, it changes nothing and raises TakenOver. Transactions are
short: one call, one transaction; writes take the write lock up front, reads never do
(jobs/engine.py). Wording and policy (what a duplicate is, which reason a person reads)
belong to the callers.

`Store` is put together from one part per side, all in this package: the claim guard
(guard.py: who this node is, the guarded update), passed to the watcher's
transitions (watcher_writes.py) and the worker's (worker_writes.py), whose methods it offers as
its own; the reads (reads.py); opening the database, notices and the operator's retry are here.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Engine, delete, select

from daemon.jobs import engine as engine_mod
from daemon.jobs import schema
from daemon.jobs.analysis import AnalysisTable
from daemon.jobs.engine import DatabaseUnavailable
from daemon.jobs.guard import ClaimGuard, TakenOver, TransitionError
from daemon.jobs.models import ACTIVE, TERMINAL, Claim, Job, JobState, Notice
from daemon.jobs.reads import Reads
from daemon.jobs.retention import RetentionTable
from daemon.jobs.watcher_writes import Ready, Seen, WatcherWrites, coarse
from daemon.jobs.worker_writes import WorkerWrites


class Store(Reads):
    """The job table's gateway: `Store.open(url)`, then reads (reads.py) and guarded writes:
    the watcher's (`store.watcher`) and the worker's (`store.worker`), both offered here."""

    def __init__(self, engine: Engine, node: str = ""):
        self.engine = engine
        self.guard = ClaimGuard(engine, node)
        self.watcher = WatcherWrites(self.guard)
        self.worker = WorkerWrites(self.guard)
        self.analysis = AnalysisTable(self.guard)  # following captures (daemon/analysis/)
        self.retention = RetentionTable(self.guard)  # [retention] (station/retention.py)

    # ---- who this node is (the guard's) -------------------------------------------------------

    @property
    def node(self) -> str:
        return self.guard.node

    @property
    def fleet(self) -> bool:
        """Several nodes may share this table (PostgreSQL)."""
        return self.guard.fleet

    @property
    def owner(self) -> str:
        """The owner of this node's node-local jobs: its name in a fleet, "" on SQLite."""
        return self.guard.owner

    @property
    def shared(self) -> frozenset[str]:
        return self.guard.shared

    @property
    def absent(self) -> frozenset[str]:
        """Watches whose root is not there on this node: their jobs are not claimed here."""
        return self.guard.absent

    @absent.setter
    def absent(self, watches: frozenset[str]) -> None:
        self.guard.absent = watches

    def set_node(self, name: str, shared: Iterable[str] = ()) -> None:
        """Who this process is in the fleet, and which shared folders it can upload from."""
        self.guard.set_node(name, shared)

    # ---- the watcher's writes (watcher_writes.py) ---------------------------------------------

    def observe(self, path: str, root: str, size: int, mtime_ns: int, now: float,
                shared_name: str | None = None) -> Seen:
        return self.watcher.observe(path, root, size, mtime_ns, now, shared_name)

    def skip_pending(self, path: str, now: float, reason: str, root: str | None = None,
                     shared_name: str | None = None) -> list[int]:
        return self.watcher.skip_pending(path, now, reason, root, shared_name)

    def hold_pending(self, path: str, now: float, reason: str, root: str,
                     shared_name: str | None = None) -> list[int]:
        return self.watcher.hold_pending(path, now, reason, root, shared_name)

    def hold(self, job_id: int, reason: str, now: float) -> None:
        self.watcher.hold(job_id, reason, now)

    def mark_ready(self, job_id: int, ready: Ready, now: float) -> bool:
        return self.watcher.mark_ready(job_id, ready, now)

    def record_facts(self, job_id: int, now: float, **facts: Any) -> None:
        self.watcher.record_facts(job_id, now, **facts)

    # ---- the worker's writes (worker_writes.py) -----------------------------------------------

    def claim(self, now: float) -> Job | None:
        return self.worker.claim(now)

    def set_athlete(self, claim: Claim, athlete_id: str, session_group_id: str,
                    now: float) -> None:
        self.worker.set_athlete(claim, athlete_id, session_group_id, now)

    def record_reservation(self, claim: Claim, session_id: str, session_group_id: str,
                           upload_url: str, expires_at: float, now: float) -> None:
        self.worker.record_reservation(claim, session_id, session_group_id, upload_url,
                                       expires_at, now)

    def reservation_ended(self, session_id: str, outcome: str) -> None:
        self.worker.reservation_ended(session_id, outcome)

    def count_refusal(self, claim: Claim, now: float) -> int:
        return self.worker.count_refusal(claim, now)

    def reserve_again(self, claim: Claim, now: float) -> int:
        return self.worker.reserve_again(claim, now)

    def start_upload(self, claim: Claim, now: float) -> None:
        self.worker.start_upload(claim, now)

    def boundary(self, claim: Claim, now: float) -> None:
        self.worker.boundary(claim, now)

    def boundary_from_now(self, claim: Claim, now: float) -> None:
        self.worker.boundary_from_now(claim, now)

    def progress(self, claim: Claim, sent: int, now: float) -> None:
        self.worker.progress(claim, sent, now)

    def finish(self, claim: Claim, etag: str | None, now: float, note: str | None = None,
               landed: str | None = None, follow_for: float | None = None) -> None:
        self.worker.finish(claim, etag, now, note, landed, follow_for)

    def requeue(self, claim: Claim, from_states: Iterable[str], now: float, *, due: float,
                reason: str | None, count_attempt: bool = True,
                check_session_id: str | None = None) -> None:
        self.worker.requeue(claim, from_states, now, due=due, reason=reason,
                            count_attempt=count_attempt, check_session_id=check_session_id)

    def abandon(self, claim: Claim, now: float, reason: str) -> None:
        self.worker.abandon(claim, now, reason)

    def back_to_pending(self, claim: Claim, from_states: Iterable[str], now: float,
                        reason: str) -> None:
        self.worker.back_to_pending(claim, from_states, now, reason)

    def fail(self, job: int | Claim, from_states: Iterable[str], now: float,
             reason: str) -> None:
        self.worker.fail(job, from_states, now, reason)

    def skip(self, job: int | Claim, from_states: Iterable[str], now: float, reason: str,
             **facts: Any) -> None:
        self.worker.skip(job, from_states, now, reason, **facts)

    def recover(self, now: float) -> int:
        return self.worker.recover(now)

    def set_archived(self, job_id: int, archived_path: str | None, note: str | None,
                     now: float) -> None:
        self.worker.set_archived(job_id, archived_path, note, now)

    # ---- opening, notices, the operator's retry -----------------------------------------------

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
                schema.upgrade(engine)
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
        with self.guard.write() as conn:  # an upsert: several nodes may set the same notice
            stmt = engine_mod.insert_for(conn)(Notice).values(
                name=name, message=message, until=until, updated_at=now)
            conn.execute(stmt.on_conflict_do_update(index_elements=[Notice.name], set_={
                "message": message, "until": until, "updated_at": now}))

    def clear_notice(self, name: str) -> None:
        with self.guard.write() as conn:
            conn.execute(delete(Notice).where(Notice.name == name))

    def retry(self, job_ids: Iterable[int] | None, now: float, force: bool = False) -> list[int]:
        """Operator's retry: failed (or the named failed/skipped) jobs back to the queue. A job
        that never got as far as being queued (e.g. refused as not a movie), or a forced one,
        goes back to pending, where the watcher settles it again (forced: without the movie
        check)."""
        # `retry` runs on a table the service may not have upgraded yet: reset only the
        # counters that table has (lapses came with 0006).
        counters = {"refusals": 0, **({"lapses": 0} if schema.has(self.engine, "0006") else {})}
        with self.guard.write() as conn:
            if self.fleet:  # due at once by the clock the fleet's claims read, not ours
                now = engine_mod.db_now(conn)
            q = select(Job.id, Job.state)
            if job_ids is None:
                q = q.where(Job.state == JobState.FAILED)
            else:
                q = q.where(Job.id.in_(list(job_ids)),
                            Job.state.in_([JobState.FAILED, JobState.SKIPPED]))
            rows = list(conn.execute(q.add_columns(Job.athlete_id, Job.file_name)))
            for row in rows:
                to = JobState.QUEUED if row.file_name and not force else JobState.PENDING
                self.guard.move(conn, row.id, [row.state], to, now, next_attempt_at=now,
                                force=force, attempts=0, last_error=None, finished_at=None,
                                **counters)
            if rows:
                engine_mod.notify_jobs(conn)
            return [r.id for r in rows]


__all__ = ["ACTIVE", "TERMINAL", "Claim", "DatabaseUnavailable", "JobState", "Ready", "Seen",
           "Store", "TakenOver", "TransitionError", "coarse"]
