"""The worker's transitions: claim a due job, record its reservations, follow the upload, and
write how it ended (done, requeued, back to pending, failed, skipped; archived after upload).

A claim sets the holder and bumps claim_no; the Job it returns carries that claim
(`job.claim`), and every later write of its upload is given it and guarded by it (guard.py), so
a stale upload changes nothing, even after this node claimed the same job again. `recover` puts
back what a dead process left in flight.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, insert, select, update

from daemon.jobs import analysis, paths
from daemon.jobs import engine as engine_mod
from daemon.jobs.guard import ClaimGuard
from daemon.jobs.models import IN_FLIGHT, Claim, Job, JobState, Reservation
from daemon.jobs.reads import _load, load_job


class WorkerWrites:
    """What the worker writes, from claim to outcome."""

    def __init__(self, guard: ClaimGuard):
        self.guard = guard

    def claim(self, now: float) -> Job | None:
        """Atomically take the next due queued job (queued -> reserved) for this node: the
        claim sets the holder and bumps claim_no; `job.claim` guards every later write."""
        with self.guard.write() as conn:
            if self.guard.fleet:
                job = self._claim_server(conn, now)
            else:
                job_id = conn.execute(
                    select(Job.id).where(Job.state == JobState.QUEUED,
                                         Job.next_attempt_at <= now, self.guard.mine())
                    .order_by(Job.next_attempt_at, Job.id).limit(1)).scalar()
                if job_id is None:
                    return None
                self.guard.move(conn, job_id, [JobState.QUEUED], JobState.RESERVED, now,
                                session_id=None, bytes_sent=0, attempts=Job.attempts + 1,
                                node=self.guard.node, claim_no=Job.claim_no + 1)
                job = _load(conn, job_id)
        return job

    def _claim_server(self, conn: Connection, now: float) -> Job | None:
        """One statement: nodes claiming at once skip each other's locked rows."""
        pick = (select(Job.id).where(Job.state == JobState.QUEUED, Job.next_attempt_at <= now,
                                     self.guard.mine())
                .order_by(Job.next_attempt_at, Job.id).limit(1)
                .with_for_update(skip_locked=True).scalar_subquery())
        row = conn.execute(
            update(Job).where(Job.id == pick, Job.state == JobState.QUEUED)
            .values(state=str(JobState.RESERVED), node=self.guard.node, claim_no=Job.claim_no + 1,
                    attempts=Job.attempts + 1, session_id=None, bytes_sent=0, updated_at=now)
            .returning(*Job.__table__.columns)).first()
        return load_job(row) if row is not None else None

    def set_athlete(self, claim: Claim, athlete_id: str, session_group_id: str,
                    now: float) -> None:
        """A claimed job's capture is to be made for its folder's link as it stands now, which
        changed since it was queued (work/athlete.py): written before the request goes."""
        with self.guard.write() as conn:
            self.guard.move(conn, claim, [JobState.RESERVED], JobState.RESERVED, now,
                            athlete_id=athlete_id, session_group_id=session_group_id)

    def record_reservation(self, claim: Claim, session_id: str, session_group_id: str,
                           upload_url: str, expires_at: float, now: float) -> None:
        job_id = claim.job_id
        with self.guard.write() as conn:
            conn.execute(update(Reservation).where(
                Reservation.job_id == job_id, Reservation.outcome == "active")
                .values(outcome="abandoned"))
            conn.execute(insert(Reservation).values(
                job_id=job_id, session_id=session_id, session_group_id=session_group_id,
                upload_url=upload_url, expires_at=expires_at, created_at=now, outcome="active"))
            # A reservation recorded ends any question about an earlier upload: the check
            # (work/landed.py) said it may be sent again.
            self.guard.move(conn, claim, [JobState.RESERVED], JobState.RESERVED, now,
                            session_id=session_id, check_session_id=None)

    def reservation_ended(self, session_id: str, outcome: str) -> None:
        """lapsed (window ran out) | refused (the endpoint would not take it) | abandoned."""
        with self.guard.write() as conn:
            conn.execute(update(Reservation).where(Reservation.session_id == session_id)
                         .values(outcome=outcome))

    def count_refusal(self, claim: Claim, now: float) -> int:
        """One more capture refused for this job; returns how many in a row."""
        with self.guard.write() as conn:
            self.guard.move(conn, claim, IN_FLIGHT, JobState(_state(conn, claim.job_id)), now,
                            refusals=Job.refusals + 1)
            return int(conn.execute(select(Job.refusals).where(
                Job.id == claim.job_id)).scalar_one())

    def reserve_again(self, claim: Claim, now: float) -> int:
        """The window lapsed during the upload: uploading -> reserved, for a new reservation.
        Counts the lapse; returns how many in a row."""
        with self.guard.write() as conn:
            self.guard.move(conn, claim, [JobState.UPLOADING], JobState.RESERVED, now,
                            session_id=None, bytes_sent=0, lapses=Job.lapses + 1)
            return int(conn.execute(select(Job.lapses).where(
                Job.id == claim.job_id)).scalar_one())

    def start_upload(self, claim: Claim, now: float) -> None:
        with self.guard.write() as conn:
            self.guard.move(conn, claim, [JobState.RESERVED], JobState.UPLOADING, now,
                            bytes_sent=0, upload_started_at=now, boundary_sent_at=None)

    def boundary(self, claim: Claim, now: float) -> None:
        """Just before the closing boundary: from here the endpoint may store the file even if
        its answer never reaches us. Durable, and with it `uploading` and the session_id
        written before: after a power cut the job still reads `uploading` with its capture,
        so start-up asks Uplift (work/landed.py) instead of uploading it again."""
        with self.guard.write(durable=True) as conn:
            self.guard.move(conn, claim, [JobState.UPLOADING], JobState.UPLOADING, now,
                            boundary_sent_at=now)

    def boundary_from_now(self, claim: Claim, now: float) -> None:
        """A claimed job asking about its lost answer found its boundary stored ahead of the
        clock (set back since): from now, so the settle time after it is real time."""
        with self.guard.write() as conn:
            self.guard.move(conn, claim, [JobState.RESERVED], JobState.RESERVED, now,
                            boundary_sent_at=now)

    def progress(self, claim: Claim, sent: int, now: float) -> None:
        with self.guard.write() as conn:
            self.guard.move(conn, claim, [JobState.UPLOADING], JobState.UPLOADING, now,
                            bytes_sent=sent)

    def finish(self, claim: Claim, etag: str | None, now: float, note: str | None = None,
               landed: str | None = None, follow_for: float | None = None) -> None:
        """uploading -> done. An earlier copy of the same path that failed (an unfinished
        recording, say) is moot now: skipped, in the same transaction. `landed`: the capture
        Uplift says it has, for a job claimed to ask about it (reserved -> done).
        `follow_for`: follow the capture through Uplift's processing that long (None: not)."""
        froms, extra = [JobState.UPLOADING], analysis.start_values(now, follow_for)
        if landed is not None:
            froms = [JobState.RESERVED]
            extra |= {"session_id": landed, "check_session_id": None}
        # Durable: after-upload may move or delete the file right after this returns.
        job_id = claim.job_id
        with self.guard.write(durable=True) as conn:
            self.guard.move(conn, claim, froms, JobState.DONE, now, etag=etag,
                            last_error=note, finished_at=now, bytes_sent=Job.size, refusals=0,
                            lapses=0, **extra)
            row = conn.execute(select(Job.session_id, Job.path, Job.owner)
                               .where(Job.id == job_id)).one()
            conn.execute(update(Reservation).where(Reservation.session_id == row.session_id)
                         .values(outcome="used"))
            olders = conn.execute(select(Job.id).where(
                Job.path == row.path, Job.owner == row.owner, Job.id != job_id,
                Job.state == JobState.FAILED).order_by(Job.id)).scalars().all()
            for older in olders:
                self.guard.move(conn, older, [JobState.FAILED], JobState.SKIPPED, now,
                                finished_at=now, last_error=f"replaced by a newer copy of the file "
                                                      f"(job {job_id}), which was uploaded")

    def requeue(self, claim: Claim, from_states: Iterable[str], now: float, *, due: float,
                reason: str | None, count_attempt: bool = True,
                check_session_id: str | None = None) -> None:
        """Back to queued, due at `due`. A retry that was not the job's fault gives the
        attempt back (claim counted it). `check_session_id`: the capture whose upload's answer
        was lost, to ask Uplift about before anything is sent again (kept once set)."""
        extra: dict[str, Any] = {} if count_attempt else {"attempts": Job.attempts - 1}
        if check_session_id is not None:
            extra["check_session_id"] = check_session_id
        with self.guard.write() as conn:
            self.guard.move(conn, claim, from_states, JobState.QUEUED, now, next_attempt_at=due,
                            last_error=reason, **extra)
            if due <= now:
                engine_mod.notify_jobs(conn)

    def abandon(self, claim: Claim, now: float, reason: str) -> None:
        """A slot's upload declared lost (stuck on its file: work/stuck.py): back to the queue,
        due now (a claim skips it while its folder is not answering), the attempt given back,
        under a new claim number, so each later write of the thread left behind is TakenOver
        (its closing boundary included). One that had sent its boundary may have landed:
        Uplift is asked about it before anything is sent again (landed.py)."""
        with self.guard.write() as conn:
            row = conn.execute(select(Job.session_id, Job.boundary_sent_at)
                               .where(Job.id == claim.job_id)).first()
            unsure = row.session_id if row is not None and row.boundary_sent_at else None
            extra = {} if unsure is None else {"check_session_id": unsure}
            self.guard.move(conn, claim, IN_FLIGHT, JobState.QUEUED, now, next_attempt_at=now,
                            attempts=Job.attempts - 1, claim_no=Job.claim_no + 1,
                            last_error=reason, **extra)
            engine_mod.notify_jobs(conn)

    def back_to_pending(self, claim: Claim, from_states: Iterable[str], now: float,
                        reason: str) -> None:
        with self.guard.write() as conn:
            self.guard.move(conn, claim, from_states, JobState.PENDING, now, last_error=reason,
                            session_id=None, attempts=Job.attempts - 1)

    def fail(self, job: int | Claim, from_states: Iterable[str], now: float,
             reason: str) -> None:
        """`job`: an upload's claim, or the id of a job not in flight (the watcher's)."""
        with self.guard.write() as conn:
            self.guard.move(conn, job, from_states, JobState.FAILED, now, last_error=reason,
                            finished_at=now)

    def skip(self, job: int | Claim, from_states: Iterable[str], now: float, reason: str,
             **facts: Any) -> None:
        with self.guard.write() as conn:
            self.guard.move(conn, job, from_states, JobState.SKIPPED, now, last_error=reason,
                            finished_at=now, **facts)

    def recover(self, now: float) -> int:
        """At start: jobs a dead process left reserved/uploading go back to the queue. Their
        upload fields were never stored, so each is reserved afresh; one left `uploading` may
        have reached the endpoint, so Uplift is asked about its capture first (landed.py).
        In a fleet, only this node's own (others' wait for their node or its lease)."""
        with self.guard.write() as conn:
            q = select(Job.id, Job.state, Job.node, Job.claim_no, Job.session_id).where(
                Job.state.in_(IN_FLIGHT))
            if self.guard.fleet:
                q = q.where(Job.node == self.guard.node)
            stuck = list(conn.execute(q))
            for row in stuck:  # under the claim it was left with, read in this transaction
                left = Claim(row.id, row.node, row.claim_no)
                unsure = unsure_session(row.state, row.session_id)
                extra = {} if unsure is None else {"check_session_id": unsure}
                self.guard.move(conn, left, [row.state], JobState.QUEUED, now,
                                next_attempt_at=now, attempts=Job.attempts - 1,
                                last_error=CHECKING if unsure else
                                "the daemon stopped during this upload; trying again", **extra)
            ended = update(Reservation).where(Reservation.outcome == "active")
            if self.guard.fleet:
                ended = ended.where(Reservation.job_id.in_([r.id for r in stuck]))
            conn.execute(ended.values(outcome="abandoned"))
            if stuck:
                engine_mod.notify_jobs(conn)
            return len(stuck)

    def set_archived(self, job_id: int, archived_path: str | None, note: str | None,
                     now: float) -> None:
        with self.guard.write() as conn:
            self.guard.move(conn, job_id, [JobState.DONE], JobState.DONE, now,
                            archived_path=None if archived_path is None else
                            paths.to_db(archived_path), last_error=note)


CHECKING = "checking with Uplift whether the last upload arrived"


def unsure_session(state: str, session_id: str | None) -> str | None:
    """The capture to ask Uplift about before a job found in flight (a restart, a takeover) is
    sent again: one left `uploading` may have reached the endpoint, whatever we heard."""
    return session_id if state == JobState.UPLOADING and session_id else None


def _state(conn: Connection, job_id: int) -> str:
    return conn.execute(select(Job.state).where(Job.id == job_id)).scalar_one()
