"""One job through its stages: check the file, reserve a capture (or reuse a window that still
fits), upload, verify, record `done`, then the after-upload action. Failures become a
TransferError, which `errors.decide` classifies and `outcomes` turns into a store call."""

from __future__ import annotations

import contextlib
import json
import os
import random
import threading
import time
from collections.abc import Callable
from concurrent import futures
from concurrent.futures import Future
from dataclasses import dataclass
from functools import partial
from typing import Any

from sqlalchemy.exc import OperationalError

from daemon import logs
from daemon.config import Config
from daemon.errors import Kind, Outcome, TransferError, Where, decide, file_error
from daemon.jobs import shares
from daemon.jobs.models import IN_FLIGHT, Claim, Job
from daemon.jobs.roots import absent_reason
from daemon.jobs.store import Store, TakenOver
from daemon.net.api import ApiClient, Reserved
from daemon.net.filecalls import LetGo
from daemon.net.upload import Aborted, Sent, Uploader
from daemon.timeutil import iso_utc, parse_iso
from daemon.work import athlete, finish, lapses, outcomes
from daemon.work.events import Events
from daemon.work.recorder import Recorder
from daemon.work.reservations import Reservations
from daemon.work.turns import Turn, Turns

PROGRESS_EVERY = 1.0  # seconds between progress writes to the job table
CHANGED_AFTER = ("the file changed after its upload had completed; this upload is kept, and "
                 "the changed file is uploaded as a new capture")
log = logs.get("worker")


class Pipeline:
    def __init__(self, cfg: Config, store: Store, api: ApiClient, uploader: Uploader,
                 reservations: Reservations, recorder: Recorder, turns: Turns,
                 abort: threading.Event, schedule: Callable[[float], None],
                 events: Events | None = None,
                 on_db_error: Callable[[Exception | None], None] = lambda e: None,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time,
                 rand: Callable[[], float] = random.random):
        self.cfg, self.store, self.api, self.uploader = cfg, store, api, uploader
        self.res, self.recorder = reservations, recorder
        self.turns = turns  # uploads sending at once
        self.abort, self.schedule = abort, schedule
        # Telling the service: a file failed, a notice, a resettle, metrics; is a folder there.
        self.events = events or Events()
        self.on_db_error = on_db_error
        self.clock, self.wall, self.rand = clock, wall, rand
        self.accepted = finish.Accepted()  # uploads the endpoint took, `done` not yet written
        self.link = lapses.Link()  # the rate and window lengths seen, for the fit check

    def process(self, job: Job) -> None:
        """Reserve and upload a claimed job, in one go."""
        held = self.reserve(job)
        if held is not None:
            self.upload_reserved(held)

    def reserve(self, job: Job) -> Held | None:
        """A claimed job's reservation, to upload soon (reserve-ahead); None when the job ended
        here instead (its outcome is written, as in `process`)."""
        job = shares.localize(job, self.cfg.watches)  # a shared file: at this node's mount
        bound = log.bind(job_id=job.id, path=job.path, athlete_id=job.athlete_id)
        got: list[Reserved] = []

        def step() -> None:
            # An earlier upload's answer was lost: Uplift says whether it landed, first.
            if not outcomes.check(self, job, bound):
                return
            self._check_file(job)
            got.append(self._reservation(job, bound))

        self._guarded(job, bound, step)
        return Held(job, got[0], bound) if got else None

    def upload_reserved(self, held: Held) -> None:
        """Upload a reserved job once it has a send turn; a window that got short while it
        waited is replaced."""
        job, bound = held.job, held.bound

        def step() -> None:
            with self.turns.turn(self.abort) as turn:
                self._check_file(job)  # it may have changed while it waited
                fits = self.res.usable(job.id, job.size) is held.res
                self._reserve_and_upload(job, bound, turn, held.res if fits else None)

        self._guarded(job, bound, step)

    def release(self, held: Held) -> None:
        """A job reserved ahead that is not uploaded now (stop, pause): back to the queue,
        the attempt not counted."""
        try:
            outcomes.interrupted(self, held.job, held.bound)
        except TakenOver as exc:
            self.res.drop(held.job.id)
            held.bound.warning("job.taken_over", reason=str(exc))

    def _guarded(self, job: Job, bound: Any, step: Callable[[], object]) -> None:
        try:
            self._process(job, bound, step)
        except TakenOver as exc:  # presumed dead, another node holds it now: hands off
            self.res.drop(job.id)
            bound.warning("job.taken_over", reason=str(exc))

    def _process(self, job: Job, bound: Any, step: Callable[[], object]) -> None:
        try:
            step()
        except LetGo:  # stuck on its file and let go: its job is another claim's now
            bound.info("upload.let_go_returned")
        except Aborted:
            outcomes.interrupted(self, job, bound)
        except TransferError as err:
            if err.boundary_sent and err.session_id:  # it may have landed: ask before anything
                outcomes.unsure(self, job, err, bound)
            elif self.abort.is_set():  # shutting down: whatever broke, the job resumes later
                outcomes.interrupted(self, job, bound)
            else:
                outcomes.apply(self, job, err, bound)
        except (OperationalError, TakenOver):
            raise  # the job table itself: the dispatcher backs off and requeues
        except Exception as exc:  # a bug must not kill the worker or lose the job
            bound.exception("job.error")
            outcomes.internal_error(self, job, exc)

    def _reserve_and_upload(self, job: Job, bound: Any, turn: Turn,
                            res: Reserved | None = None) -> None:
        in_claim = 0  # windows lapsed in this claim
        while True:
            turn.take()  # again after a lapse: this attempt sends anew
            if res is None:  # none yet, or it lapsed: reserve (or reuse a window that fits)
                res = self._reservation(job, bound)
            bound.info("upload.started", session_id=res.session_id, size=job.size)
            # `uploading` is written while the request starts; it must be in before the
            # closing boundary (`ready`), and before any outcome of this attempt is written.
            try:
                started = self.recorder.starts.submit(self.store.start_upload, job.claim,
                                                      self.wall())
            except RuntimeError:  # shutting down: the job goes back to the queue
                raise Aborted() from None
            meter = lapses.meter(self, self.clock)  # bytes acknowledged over time: the rate
            try:
                sent = self.uploader.upload(
                    job.path, job.size, res.upload_url, res.upload_fields,
                    job.file_name or "capture.mov",
                    meter.wrap(self._progress(job.claim, started)), self.abort, job.mtime_ns,
                    ready=partial(self._ready, job.claim, started, turn), all_sent=turn.give)
            except TransferError as err:
                started.result()  # the job table's own failure (taken over, locked) first
                err.session_id, err.lapsed = res.session_id, self.res.lapsed(res)
                if err.boundary_sent:  # it may have landed: never re-reserved or sent here
                    raise
                d = decide(err, 1, self.rand, lapsed=err.lapsed)
                if d.outcome is Outcome.RERESERVE:  # the window ran out
                    in_claim += 1
                    d = lapses.lapsed(self, job, res, err, in_claim, meter, bound)
                    if d.outcome is Outcome.RERESERVE:
                        res = None
                        continue
                    err.decided = d  # counted and decided: outcomes apply it as it is
                raise
            except BaseException:
                futures.wait([started])  # whatever happened, its outcome is written after
                raise
            # `ready` (started.result) ran before the closing boundary: `uploading` is in.
            lapses.note_rate(self, meter, sent.size, sent.seconds)
            note = self._check_after(job, sent)
            # The rest is bookkeeping: the slot goes on to its next upload meanwhile.
            finish.accepted(self, job, res, sent, note, bound)
            return

    def _ready(self, claim: Claim, started: Future[None], turn: Turn) -> None:
        """Just before the closing boundary: the table shows the upload (else its failure
        raises), this node may still complete it (fleet's fence), and the boundary's time is
        on disk with the job's `uploading` and session_id: from here a lost answer is asked
        about (landed.py), never just sent again."""
        started.result()
        turn.check()
        self.store.boundary(claim, self.wall())

    def lapsed(self, job: Job, res: Reserved, bound: Any, why: str) -> int:
        """Record a window that ran out; returns how many did in a row for this job."""
        self.res.drop(job.id)
        self.store.reservation_ended(res.session_id, "lapsed")
        count = self.store.reserve_again(job.claim, self.wall())
        self.events.upload_finished("lapsed", 0, 0.0, self.wall())
        bound.info("job.window_lapsed", session_id=res.session_id, reason=why, lapses=count)
        return count

    def _check_after(self, job: Job, sent: Sent) -> str | None:
        """After a 2xx the endpoint has the settled version: upload() checked the file just
        before the closing boundary (a change while it was read never gets one). So what
        differs now came later: the job is done with a note saying so, and once that is written
        the path is looked at again (finish.py): a changed or replaced file there is a new
        version with a job of its own; one removed was still sent whole."""
        if sent.source != (job.size, job.mtime_ns):
            return CHANGED_AFTER
        try:
            self._check_file(job)
        except TransferError as err:
            if err.kind in (Kind.VANISHED, Kind.ROOT_ABSENT):
                return "the file was moved or removed during its upload; the upload had completed"
            if err.kind is Kind.CHANGED:
                return CHANGED_AFTER
            raise
        return None

    def _reservation(self, job: Job, bound: Any) -> Reserved:
        cached = self.res.usable(job.id, job.size)
        if cached is not None:
            self.store.record_reservation(job.claim, cached.session_id, cached.session_group_id,
                                          cached.upload_url, cached.expires_at, self.wall())
            return cached
        stale = self.res.drop(job.id)
        if stale is not None:
            self.store.reservation_ended(stale.session_id, "lapsed")
            bound.info("job.window_short", session_id=stale.session_id)
        athlete.settle(self.cfg, self.store, job, self.wall(), bound)  # a new capture's
        try:
            res = self._create(job)
        except TransferError as err:
            # Our clock may run ahead of the server's, making capture_time "in the future":
            # learn the skew from this answer's Date header and ask once more.
            if err.status != 400 or err.server_time is None or not self.res.learn_skew(
                    err.server_time):
                raise
            bound.info("api.clock_skew", skew=round(self.res.skew, 1))
            res = self._create(job)
        notice = self.res.resumed()
        if notice:
            self.store.clear_notice(notice)
            self.events.notice(notice, None)
            bound.info("api.accepted_again", notice=notice)
        if res.server_time is not None:
            self.res.learn_skew(res.server_time)
        self.res.keep(job.id, res)
        self.store.record_reservation(job.claim, res.session_id, res.session_group_id,
                                      res.upload_url, res.expires_at, self.wall())
        self.events.reserved()
        bound.info("job.reserved", session_id=res.session_id, athlete_id=job.athlete_id,
                   expires_at=iso_utc(res.expires_at))
        return res

    def _create(self, job: Job) -> Reserved:
        """One POST /captures, never repeated here: a second call would be a second capture.
        A window the file cannot fit (by what uploads measured) is not created at all."""
        lapses.check_fit(self, job)
        now, skew = self.wall(), self.res.skew
        # The network layer checks the answer's expiry against our clock and skew.
        res = self.api.create_capture(self._body(job), now=now, skew=skew)
        self.link.note_window(res.expires_at - (now + skew))
        return res

    def _body(self, job: Job) -> dict[str, Any]:
        latest = self.res.latest_capture_time()
        capture = job.capture_time
        if capture is None or parse_iso(capture) > latest:
            capture = iso_utc(latest)
        return {
            "athlete_id": job.athlete_id,
            "session_group_id": job.session_group_id,
            "camera_configuration": json.loads(job.camera_configuration or "{}"),
            "movement_attributes": json.loads(job.movement_attributes or "{}"),
            "file_name": job.file_name,
            "capture_time": capture,
        }

    def _progress(self, claim: Claim, started: Future[None]) -> Callable[[int], None]:
        last = [self.clock()]  # the first write after PROGRESS_EVERY: small files need none

        def report(sent: int) -> None:
            now = self.clock()
            if started.done() and started.exception() is not None:
                # The job table could not say `uploading` (taken over, failing): stop now
                # rather than at the closing boundary.
                started.result()
            # Progress is written only to a job the table shows uploading.
            if now - last[0] >= PROGRESS_EVERY and started.done():
                last[0] = now
                # progress is a nicety; the outcome write is what must not be lost
                with contextlib.suppress(OperationalError):
                    self.store.progress(claim, sent, self.wall())

        return report

    def _check_file(self, job: Job) -> None:
        try:
            with self.uploader.files.on():  # a hung share blocks here (work/stuck.py)
                st = os.stat(job.path)
            self.uploader.files.check()  # let go meanwhile: no request, no write
        except OSError as exc:
            if isinstance(exc, FileNotFoundError) and \
                    not self.events.folder_there(job):  # not gone: its folder is not there
                raise TransferError(Where.FILE, Kind.ROOT_ABSENT,
                                    absent_reason(job.root)) from None
            raise file_error(exc) from None
        if st.st_size != job.size or st.st_mtime_ns != job.mtime_ns:
            raise TransferError(Where.FILE, Kind.CHANGED,
                                "the file changed after it was queued; it will be uploaded "
                                "once it stops changing")


@dataclass(frozen=True)
class Held:
    """A claimed job with its reservation, waiting for an upload slot."""
    job: Job  # at this node's path
    res: Reserved
    bound: Any  # its log context


__all__ = ["IN_FLIGHT", "Held", "Pipeline"]



