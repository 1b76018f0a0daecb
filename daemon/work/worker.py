"""The worker: the dispatcher (upload slots), the per-job pipeline, the shared reservation state
and the outcome table, put together for the service."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from functools import partial

from sqlalchemy.exc import OperationalError

from daemon import logs
from daemon.config import Config
from daemon.jobs.models import IN_FLIGHT, Job
from daemon.jobs.store import Store
from daemon.net.api import ApiClient
from daemon.net.upload import Uploader
from daemon.work.dispatcher import Dispatcher
from daemon.work.events import Events
from daemon.work.pipeline import Held, Pipeline
from daemon.work.recorder import Recorder
from daemon.work.reservations import Reservations
from daemon.work.stuck import ABANDONED, Stuck
from daemon.work.turns import Fence, Turns
from daemon.work.wakeups import Wakeups

log = logs.get("worker")
GATE_DB_RETRY = 5.0  # seconds before a slot asks again when the job table could not be read


def reserve_ahead(concurrency: int) -> int:
    """Reserve-ahead threads: two per slot, so each slot's next job is reserved while it
    uploads, and small files on a distant API have a second round trip in flight (the
    dispatcher holds only as many ahead as the measured times call for). More (8) gained
    nothing for small files and, claiming on SQLite's one writer lock, slowed a burst of
    arrivals from 16.5 s to 26.9 s (bench, 2,000 files)."""
    return 2 * concurrency


class Worker:
    """`events` is what the work tells the service (events.py); `fence` is fleet mode's (no
    upload reaches its closing boundary while this node is fenced)."""

    def __init__(self, cfg: Config, store: Store, api: ApiClient, uploader: Uploader,
                 events: Events | None = None,
                 on_db_error: Callable[[Exception | None], None] = lambda e: None,
                 gate: Callable[[], float] = lambda: 0.0,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time,
                 rand: Callable[[], float] = random.random, *,
                 fence: Fence | None = None):
        self.cfg, self.store, self.wall = cfg, store, wall
        self.extra_gate = gate
        self.reservations = Reservations(cfg.upload.reserve_margin_seconds, clock, wall)
        wakeups = Wakeups(clock)
        # Uploads sending at once. A job waiting for a send turn starts only while new uploads
        # may start; one that stops waiting leaves room for reserve-ahead.
        turns = Turns(cfg.upload.concurrency, may_start=self._may_start,
                      on_waiting=wakeups.nudge, fence=fence)
        self.dispatcher = Dispatcher(cfg.upload.concurrency, self._claim, self._process,
                                     self._orphan, self._gate, on_db_error,
                                     on_abort=uploader.abort_all, clock=clock,
                                     reserve=self._reserve, upload=self._upload,
                                     release=self._release,
                                     reservers=reserve_ahead(cfg.upload.concurrency),
                                     threads=2 * cfg.upload.concurrency,  # see work/turns.py
                                     held_ahead=turns.waiting, wakeups=wakeups,
                                     stuck=Stuck(uploader.files.since, self._stall_seconds,
                                                 lambda: store.absent,
                                                 partial(_cut, uploader, turns), self._abandon))
        self.recorder = Recorder()  # the slots' writes that need not hold up an upload
        self.pipeline = Pipeline(cfg, store, api, uploader, self.reservations, self.recorder,
                                 turns, self.dispatcher.abort, self.dispatcher.wake_in, events,
                                 on_db_error, clock, wall, rand)

    def _may_start(self) -> bool:
        return not self.dispatcher.stopping() and self._gate() <= 0

    @property
    def abort(self) -> threading.Event:
        return self.dispatcher.abort

    def start(self) -> None:
        notices = self.store.notices()
        for name in ("credentials", "certificate"):
            if name in notices:  # set by an earlier run: cleared by the first reservation
                self.reservations.pause(0.0, notices[name]["message"], notice=name)
        self.dispatcher.start()
        due = self.store.next_due(self.wall())
        if due is not None:
            self.dispatcher.wake_in(due - self.wall())

    def wake(self) -> None:
        self.dispatcher.wake()

    def poll(self) -> None:
        """The safety net (a wake-up that went missing, a job queued by another process): one
        read; the upload threads are woken only when a job is due, so idle stays idle."""
        try:
            due = self.store.any_due(self.wall())
        except OperationalError as exc:
            self.pipeline.on_db_error(exc)
            return
        if due:
            self.dispatcher.wake()

    def reconfigure(self, cfg: Config) -> None:
        self.cfg = self.pipeline.cfg = cfg

    def stop(self, timeout: float, force: Callable[[], bool] = lambda: False) -> None:
        deadline = time.monotonic() + timeout
        self.dispatcher.stop(timeout, force)
        # Accepted uploads' `done` writes go on until the same deadline; what is left then
        # (a job table still failing) is given up, and the service exits non-zero.
        self.recorder.stop(deadline, force)
        accepted = self.pipeline.accepted
        accepted.give_up()
        if accepted.archiving:  # uploaded and recorded; the files stay where they are
            log.error("job.after_upload_not_run", job_ids=sorted(accepted.archiving))

    def _gate(self) -> float:
        """Seconds to wait before claiming: a service-wide pause, the operator's pause, upload
        hours. A job table that cannot be read holds claims too (and is reported)."""
        try:
            return max(self.reservations.paused_for(), self.extra_gate())
        except OperationalError as exc:
            self.pipeline.on_db_error(exc)
            return GATE_DB_RETRY

    def _claim(self) -> Job | None:
        return self.store.claim(self.wall())

    def _process(self, job: Job) -> None:
        self.pipeline.process(job)

    def _reserve(self, job: Job) -> Held | None:
        return self.pipeline.reserve(job)

    def _upload(self, held: Held) -> None:
        self.pipeline.upload_reserved(held)

    def _release(self, held: Held) -> None:
        self.pipeline.release(held)

    def _stall_seconds(self) -> float:
        return self.cfg.upload.stall_seconds

    def _abandon(self, job: Job) -> None:
        """A slot let go while stuck on its file (stuck.py): its job back to the queue."""
        self.reservations.drop(job.id)
        self.store.abandon(job.claim, self.wall(), ABANDONED)
        self.dispatcher.wake()

    def _orphan(self, job: Job) -> None:
        """A slot died or the job table failed under a job: put it back in the queue."""
        self.reservations.drop(job.id)
        now = self.wall()
        current = self.store.get(job.id)
        # Still this upload's: in flight under its very claim (the job may have been taken
        # over, and even claimed again by this node since: that claim is not this one's).
        if current is not None and current.state in IN_FLIGHT and current.claim == job.claim:
            self.store.requeue(job.claim, IN_FLIGHT, now, due=now + 5.0, count_attempt=False,
                               reason="interrupted by an internal problem; retrying")
            self.dispatcher.wake_in(5.0)


def _cut(uploader: Uploader, turns: Turns, thread: threading.Thread) -> None:
    """A stuck thread let go: its request ended, its send turn given back, and once its
    file call returns it ends (net/filecalls.py)."""
    uploader.files.let_go(thread)
    if thread.ident is not None:
        uploader.cut(thread.ident)
        turns.forfeit(thread.ident)
