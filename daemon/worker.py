"""The worker: claims due jobs, reserves each capture, uploads it, records the outcome.

APScheduler runs it. A wake-up (a job became ready, a backoff ran out, the poll tick) starts a
drain on the thread pool if fewer than `concurrency` are running; otherwise it sets our own
"again" flag, which a running drain sees before it exits. So no wake-up is lost, even though
APScheduler itself would drop one aimed at a job instance that is still running.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from apscheduler.schedulers.base import BaseScheduler

from daemon import archive, logs
from daemon.apiclient import ApiClient, Reserved
from daemon.config import Config
from daemon.errors import Decision, Kind, Outcome, TransferError, Where, decide, file_error
from daemon.jobs.models import Job, JobState
from daemon.jobs.store import Store
from daemon.timeutil import iso_utc, local_clock, parse_iso
from daemon.uploader import CHANGED_WHILE_UPLOADING, Aborted, Sent, Uploader

MAX_LAPSES = 3  # re-reservations in a row before the job backs off instead
PROGRESS_EVERY = 1.0  # seconds between progress writes to the job table
IN_FLIGHT = (JobState.RESERVED, JobState.UPLOADING)
log = logs.get("worker")


class Worker:
    def __init__(self, cfg: Config, store: Store, api: ApiClient, uploader: Uploader,
                 scheduler: BaseScheduler, on_resettle: Callable[[str], None] = lambda p: None,
                 clock: Callable[[], float] = time.time,
                 rand: Callable[[], float] = random.random):
        self.cfg, self.store, self.api, self.uploader = cfg, store, api, uploader
        self.scheduler, self.on_resettle = scheduler, on_resettle
        self.clock, self.rand = clock, rand
        self._lock = threading.Lock()
        self._active = 0
        self._again = False
        self.stopping = threading.Event()
        self.abort = threading.Event()
        self._idle = threading.Condition(self._lock)
        self._reservations: dict[int, Reserved] = {}  # job id -> window still usable
        self._skew = 0.0  # server clock minus ours, from the API's Date header
        self._rate: float | None = None  # bytes/s seen so far, to judge a window's length
        self.paused_until = 0.0  # credentials rejected: no reservations before this
        self._paused_notice = bool(store.notices().get("credentials"))

    # ---- scheduling ------------------------------------------------------------------------

    def start(self) -> None:
        self.scheduler.add_job(self.wake, "interval", seconds=self.cfg.upload.poll_seconds,
                               id="worker-poll", replace_existing=True)
        self.wake()

    def wake(self) -> None:
        if self.stopping.is_set():
            return
        with self._lock:
            if self._active >= self.cfg.upload.concurrency:
                self._again = True
                return
            self._active += 1
        self.scheduler.add_job(self._drain)

    def _wake_at(self, when: float) -> None:
        self.scheduler.add_job(self.wake, "date", run_date=datetime.fromtimestamp(when, UTC))

    def _drain(self) -> None:
        try:
            while not self.stopping.is_set():
                job = None if self.clock() < self.paused_until else self.store.claim(self.clock())
                if job is None:
                    with self._lock:
                        if self._again and self.clock() >= self.paused_until:
                            self._again = False
                            continue
                        return
                self.process(job)
        except Exception:
            log.exception("worker.crashed")
        finally:
            with self._lock:
                self._active -= 1
                self._idle.notify_all()

    def stop(self, timeout: float, force: Callable[[], bool] = lambda: False) -> None:
        """Take no new work; let in-flight uploads finish within `timeout`, then abort them
        (they go back to the queue)."""
        self.stopping.set()
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._active and time.monotonic() < deadline and not force():
                self._idle.wait(0.2)
            if self._active:
                self.abort.set()  # seen between chunks: within chunk/rate seconds
                end = time.monotonic() + 10
                while self._active and time.monotonic() < end:
                    self._idle.wait(0.2)

    # ---- one job ---------------------------------------------------------------------------

    def process(self, job: Job) -> None:
        bound = log.bind(job_id=job.id, path=job.path, athlete_id=job.athlete_id)
        try:
            self._check_file(job)
            self._reserve_and_upload(job, bound)
        except Aborted:
            self._interrupted(job, bound)
        except TransferError as err:
            if self.abort.is_set():  # shutting down: whatever broke, the job just resumes later
                self._interrupted(job, bound)
            else:
                self._apply(job, decide(err, job.attempts, self.rand), err, bound)
        except Exception as exc:  # a bug must not kill the worker or lose the job
            bound.exception("job.error")
            due = self.clock() + 60
            self.store.requeue(job.id, IN_FLIGHT, self.clock(), due=due,
                               reason=f"internal error ({type(exc).__name__}); retrying")
            self._wake_at(due)

    def _interrupted(self, job: Job, bound: Any) -> None:
        self.store.requeue(job.id, IN_FLIGHT, self.clock(), due=self.clock(),
                           reason="interrupted by shutdown; will resume", count_attempt=False)
        bound.info("upload.interrupted")

    def _reserve_and_upload(self, job: Job, bound: Any) -> None:
        lapses = 0
        while True:
            res = self._reservation(job, bound)
            self.store.start_upload(job.id, self.clock())
            bound.info("upload.started", session_id=res.session_id, size=job.size)
            try:
                sent = self.uploader.upload(
                    job.path, job.size, res.upload_url, res.upload_fields,
                    job.file_name or "capture.mov", self._progress(job.id), self.abort,
                    job.mtime_ns)
            except TransferError as err:
                if decide(err, 1, self.rand).outcome is Outcome.RERESERVE and lapses < MAX_LAPSES:
                    lapses += 1
                    self._lapsed(job, res, bound, err.message)
                    continue
                raise
            note = self._check_after(job, sent)
            self.store.finish(job.id, sent.etag, self.clock(), note)
            self._reservations.pop(job.id, None)
            if note is None:
                self._after_upload(job, bound)
            if sent.seconds > 0.5:
                rate = sent.size / sent.seconds
                self._rate = rate if self._rate is None else 0.7 * self._rate + 0.3 * rate
            bound.info("upload.done", session_id=res.session_id, etag=sent.etag,
                       seconds=round(sent.seconds, 3))
            return

    def _check_after(self, job: Job, sent: Sent) -> str | None:
        """After a 2xx: were the bytes sent exactly the settled version? A file changed while it
        was read (the bytes may be a mix) or replaced goes back to settle; one removed after we
        opened it was still sent whole, which the open file's own stat proves."""
        if sent.source != (job.size, job.mtime_ns):
            raise TransferError(Where.FILE, Kind.CHANGED, CHANGED_WHILE_UPLOADING)
        try:
            self._check_file(job)
        except TransferError as err:
            if err.kind is Kind.VANISHED:
                return "the file was removed during its upload; the upload had completed"
            raise
        return None

    def _after_upload(self, job: Job, bound: Any) -> None:
        up = self.cfg.upload
        try:
            moved = archive.after_upload(up.after_upload, job.path, job.root, up.archive_dir)
        except archive.ArchiveError as exc:
            self.store.set_archived(job.id, None, str(exc), self.clock())
            bound.warning("job.after_upload_failed", reason=str(exc))
            return
        if moved is not None:
            self.store.set_archived(job.id, moved, None, self.clock())
        if up.after_upload != "keep":
            bound.info("job.after_upload", action=up.after_upload, archived_path=moved)

    def _lapsed(self, job: Job, res: Reserved, bound: Any, why: str) -> None:
        self._reservations.pop(job.id, None)
        self.store.reservation_lapsed(res.session_id)
        self.store.reserve_again(job.id, self.clock())
        bound.info("job.window_lapsed", session_id=res.session_id, reason=why)

    def _learn_skew(self, server_time: float) -> bool:
        """True when the server's clock turned out to differ from what we assumed by more than
        the Date header's one-second resolution."""
        skew = server_time - self.clock()
        changed = abs(skew - self._skew) > 1.5
        self._skew = skew
        return changed

    def _needed_window(self, size: int) -> float:
        margin = self.cfg.upload.reserve_margin_seconds
        return margin + (1.5 * size / self._rate if self._rate else 0.0)

    def _reservation(self, job: Job, bound: Any) -> Reserved:
        cached = self._reservations.get(job.id)
        now = self.clock()
        if cached and cached.expires_at - (now + self._skew) >= self._needed_window(job.size):
            self.store.record_reservation(job.id, cached.session_id, cached.session_group_id,
                                          cached.upload_url, cached.expires_at, now)
            return cached
        if cached:
            self.store.reservation_lapsed(cached.session_id)
            bound.info("job.window_short", session_id=cached.session_id)
        try:
            res = self.api.create_capture(self._body(job))
        except TransferError as err:
            # Our clock may run ahead of the server's, making capture_time "in the future":
            # learn the skew from this answer's Date header and ask once more.
            if err.status != 400 or err.server_time is None or not self._learn_skew(
                    err.server_time):
                raise
            bound.info("api.clock_skew", skew=round(self._skew, 1))
            res = self.api.create_capture(self._body(job))
        if self._paused_notice:
            self._paused_notice = False
            self.store.clear_notice("credentials")
            bound.info("api.credentials_accepted")
        if res.server_time is not None:
            self._learn_skew(res.server_time)
        self._reservations[job.id] = res
        self.store.record_reservation(job.id, res.session_id, res.session_group_id,
                                      res.upload_url, res.expires_at, self.clock())
        bound.info("job.reserved", session_id=res.session_id,
                   expires_at=iso_utc(res.expires_at))
        return res

    def _body(self, job: Job) -> dict[str, Any]:
        # Never in the future by the server's clock (the API refuses that), with a margin for
        # the Date header's one-second resolution.
        latest = self.clock() + min(self._skew, 0.0) - 2.0
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

    def _progress(self, job_id: int) -> Callable[[int], None]:
        last = [0.0]

        def report(sent: int) -> None:
            now = self.clock()
            if now - last[0] >= PROGRESS_EVERY:
                last[0] = now
                self.store.progress(job_id, sent, now)

        return report

    def _check_file(self, job: Job) -> None:
        try:
            st = os.stat(job.path)
        except OSError as exc:
            raise file_error(exc) from None
        if st.st_size != job.size or st.st_mtime_ns != job.mtime_ns:
            raise TransferError(Where.FILE, Kind.CHANGED,
                                "the file changed after it was queued; it will be uploaded "
                                "once it stops changing")

    def _apply(self, job: Job, d: Decision, err: TransferError, bound: Any) -> None:
        now = self.clock()
        if d.outcome in (Outcome.RETRY, Outcome.RERESERVE):
            delay = d.delay or 5.0
            due = now + delay
            self.store.requeue(job.id, IN_FLIGHT, now, due=due,
                               reason=f"{d.reason}; retrying at {local_clock(due)}")
            bound.warning("job.retry", reason=d.reason, delay=round(delay, 1))
            if err.where is Where.API:
                # The API is down or rate-limiting us: asking again for every queued job would
                # only add load. Hold all reservations for the same delay.
                self.paused_until = max(self.paused_until, due)
            self._wake_at(due)
        elif d.outcome is Outcome.PAUSE:
            self.paused_until = now + d.delay
            self._reservations.pop(job.id, None)
            message = (f"the API rejected our credentials ({d.reason}); all uploads paused, "
                       f"checking again at {local_clock(self.paused_until)}. Check the API "
                       f"token (see `uplift-capture check`).")
            self.store.requeue(job.id, IN_FLIGHT, now, due=now, count_attempt=False,
                               reason=message)
            self.store.set_notice("credentials", message, self.paused_until, now)
            self._paused_notice = True
            bound.error("api.credentials_rejected", reason=d.reason)
            self._wake_at(self.paused_until)
        elif d.outcome is Outcome.RESETTLE:
            self._reservations.pop(job.id, None)
            self.store.back_to_pending(job.id, IN_FLIGHT, now, d.reason)
            bound.info("job.changed", reason=d.reason)
            self.on_resettle(job.path)
        else:  # FAIL, GONE
            self._reservations.pop(job.id, None)
            reason = d.reason if err.where is Where.FILE else f"the server refused it: {d.reason}"
            self.store.fail(job.id, IN_FLIGHT, now, reason)
            bound.error("job.failed", reason=reason)
