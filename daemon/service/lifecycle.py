"""Service lifecycle, in the open as uvicorn's Server has it: `startup()` starts the parts in
order, `main_loop()` supervises them, `shutdown()` stops every started part in the reverse
order, whatever happened. `run()` is the three in a try/finally.

Signal handlers only set flags. The main thread sleeps in select() on a wake-up socket that
Python's C-level handler writes to, so it reacts at once and uses no CPU while idle. Every part
that owns a thread is checked by the health tick (health.py) and restarted (or the process
exits non-zero for systemd) when it died.
"""

from __future__ import annotations

import contextlib
import math
import os
import select
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import FrameType

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy.exc import OperationalError

from daemon import config as config_mod
from daemon import logs, sdnotify
from daemon.alerts.reporting import STUCK_EVERY, Reporter
from daemon.config import Config, ConfigError
from daemon.jobs import engine as engine_mod
from daemon.jobs.athletes import Directory
from daemon.jobs.store import DatabaseUnavailable, Store
from daemon.service import control, health, process
from daemon.service import fleet as fleet_mod
from daemon.service import parts as parts_mod
from daemon.service.attention import Attention
from daemon.service.clients import Connections
from daemon.service.fleet import FleetPart
from daemon.service.parts import Ctx, Part, Stoppable
from daemon.service.runtime import StateFile, state_path
from daemon.station import priority
from daemon.watch.intake import Watcher
from daemon.work.gate import Gate
from daemon.work.worker import Worker

log = logs.get("service")
# Imported only when the config uses them (console, notify, PostgreSQL, Alembic, sandbox).
OPTIONAL_IMPORTS = ("starlette", "uvicorn", "jinja2", "prometheus_client", "apprise",
                    "psycopg", "psycopg2", "alembic", "daemon.sandbox.server")
# Seconds between supervision ticks, run by the main thread between signals.
HEALTH_EVERY = 5.0


@dataclass
class Flags:
    stop: int = 0  # SIGTERM/SIGINT count: 1 = stop cleanly, 2 = stop at once
    reload: bool = False  # SIGHUP
    look: bool = False  # SIGUSR1: the job table changed (`retry`, `pause` from the CLI)
    health: bool = False  # run the supervision tick now (a watch root was deleted)
    toggle_limit: bool = False  # SIGUSR2: bandwidth limit off / on again, as rclone does
    fatal: str | None = None  # a part cannot recover: exit non-zero so systemd restarts us
    signals: list[int] = field(default_factory=list)


class Service:
    def __init__(self, cfg: Config, sandbox: bool = False):
        self.cfg = cfg
        self.use_sandbox = sandbox
        self.flags = Flags()
        self._rsock, self._wsock = socket.socketpair()
        self._poll = select.poll()
        self._poll.register(self._rsock, select.POLLIN)
        self.net = Connections(sandbox)
        self.parts: list[Stoppable] = []  # started so far; stopped in reverse by shutdown()
        self.fleet: FleetPart | None = None
        self.worker: Worker | None = None
        self.ctx: Ctx | None = None
        self.db_identity: object = None
        self.lost_wal = health.LostWal(cfg.database_url)

    # ---- signals and waking the main thread ----------------------------------------------------

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            self.flags.reload = True
        elif signum == signal.SIGUSR1:
            self.flags.look = True
        elif signum == signal.SIGUSR2:
            self.flags.toggle_limit = True
        else:
            self.flags.stop += 1

    def _install_signals(self) -> None:
        self._rsock.setblocking(False)
        self._wsock.setblocking(False)
        signal.set_wakeup_fd(self._wsock.fileno(), warn_on_full_buffer=False)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1,
                    signal.SIGUSR2):
            signal.signal(sig, self._on_signal)

    def _wait(self, timeout: float | None) -> None:
        # poll, not select(): the wake-up socket may be numbered past 1,024 (issue 30)
        if self._poll.poll(None if timeout is None else max(0, math.ceil(timeout * 1000))):
            with contextlib.suppress(BlockingIOError):
                while self._rsock.recv(64):
                    pass

    def _look_now(self) -> None:
        """From any thread (the console's Retry, Pause, Resume): as SIGUSR1 does."""
        self.flags.look = True
        with contextlib.suppress(OSError):
            self._wsock.send(b"\0")

    def _health_now(self) -> None:
        """From any thread: run the supervision tick now, on the main thread."""
        self.flags.health = True
        with contextlib.suppress(OSError):
            self._wsock.send(b"\0")

    def _fatal(self, reason: str) -> None:
        """Called from any thread: wake the main loop to stop and exit non-zero."""
        if self.flags.fatal is None:
            self.flags.fatal = reason
        with contextlib.suppress(OSError):
            self._wsock.send(b"\0")

    def _wake_work(self) -> None:
        """Files queued, takeovers and NOTIFYs wake the worker. The parts that tell it (the
        watcher, the fleet's threads) are made before it and are given this method."""
        if self.worker is not None:
            self.worker.wake()

    # ---- the lifecycle -------------------------------------------------------------------------

    def run(self) -> int:
        self._install_signals()
        applied = process.settle_in(self.cfg.station.priority)  # before any thread: inherited
        try:
            self.startup()
            priority.report(applied)
            self.main_loop()
        finally:
            self.shutdown()
        if self.flags.fatal:
            log.error("daemon.failed", reason=self.flags.fatal)
            return 1
        log.info("daemon.stopped")
        return 0

    def _started(self, part: Stoppable) -> None:
        self.parts.append(part)

    def startup(self) -> None:
        """Start the parts in order, each added to `parts` once started. Timers come last and
        stop first (nothing restarts what is being stopped), then no new files, then no new
        uploads (in-flight ones finish or go back to the queue), then the fleet's lease."""
        cfg = self.cfg
        if self.use_sandbox:
            from daemon.sandbox import server as sandbox_server  # only for --sandbox

            sandbox = sandbox_server.start(cfg.sandbox.data_dir,
                                           upload_window=cfg.sandbox.upload_window)

            def stop_sandbox() -> None:
                sandbox.shutdown()
                sandbox.server_close()

            self._started(Part("sandbox", stop_sandbox))
            cfg = self.cfg = config_mod.with_base_url(cfg, sandbox.base_url)
            self.net.token = sandbox.state.token
            logs.add_secret(self.net.token)
            log.info("sandbox.started", base_url=sandbox.base_url,
                     data_dir=str(cfg.sandbox.data_dir))
        else:
            self.net.read_token(cfg)
        lock = engine_mod.acquire_instance_lock(cfg.database_url)
        if lock is not None:
            self._started(Part("lock", lock.close))
        problem = engine_mod.check_writable(cfg.database_url)
        if problem:
            raise DatabaseUnavailable(problem)
        store = Store.open(cfg.database_url, migrate=True)
        self._started(Part("store", store.close))
        # Our node name; in a fleet, our name taken and the heartbeat thread started. It stops
        # after the worker, so the lease holds until uploads drained.
        self.fleet = fleet_mod.join(cfg, store, wake=self._wake_work, on_lost=self._fatal)
        if self.fleet is not None:
            self._started(self.fleet)
        # In a fleet every due time is compared on the database's clock (Fleet.wall).
        wall = self.fleet.fleet.wall if self.fleet is not None else time.time
        self.db_identity = engine_mod.db_identity(cfg.database_url)
        state = StateFile(state_path(engine_mod.sqlite_path(cfg.database_url)))
        state.write({"pid": os.getpid(), "attention": {}})
        self._started(Part("state", lambda: state.close(remove=self.flags.fatal is None)))
        attention = Attention(store, state)
        found = parts_mod.recordings(lambda: self.cfg, store, attention, self.net.recording_cap,
                                     self._wake_work)
        self._started(Part("recordings", found.stop))
        gate = Gate(store, cfg.upload.hours, recordings=found.hold, config=str(cfg.source))
        # A queue held on purpose (operator's pause, upload hours) is never reported stuck.
        reporter = Reporter(cfg.notify, store, held=lambda: gate.check()[1],
                            config=str(cfg.source))
        self._started(Part("reporter", reporter.close))
        reporter.start()
        attention.on_change = reporter.notice
        space = parts_mod.space_watch(lambda: self.cfg, store, attention, wall)
        space.start()
        self._started(Part("space", space.stop))
        recovered = store.recover(wall())
        if recovered:
            log.info("jobs.recovered", count=recovered)
        api, uploader = self.net.build(cfg)
        self._started(Part("api", api.close))
        self._started(Part("uploader", uploader.close))
        scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(4)},
            job_defaults={"misfire_grace_time": None, "coalesce": True, "max_instances": 1},
            timezone="UTC")
        watcher = Watcher(cfg, store, on_queued=self._wake_work, on_db_error=attention.db_error,
                          on_root=attention.root, on_root_deleted=self._health_now, wall=wall,
                          on_failed=reporter.failed, on_roots=attention.condition,
                          directory=Directory(store),  # links made at a station
                          on_file=parts_mod.each(found.seen, space.seen))
        # Which watch folders are there (an unmounted share is not): before the first claim.
        watcher.check_roots()
        metrics = parts_mod.new_metrics(cfg)
        follower = parts_mod.new_follower(cfg, store, api, reporter, attention, metrics, wall)
        events = parts_mod.new_events(reporter, watcher, metrics, follower, attention)
        fence = self.fleet.fence_wait if self.fleet is not None else lambda: 0.0
        # In a fleet, no upload reaches its closing boundary while this node is fenced.
        worker = self.worker = Worker(
            cfg, store, api, uploader, events, on_db_error=attention.db_error,
            gate=lambda: max(gate.seconds(), fence()), wall=wall,
            fence=self.fleet.fleet if self.fleet is not None else None)
        ctx = self.ctx = Ctx(store, api, worker, watcher, attention, scheduler, gate, reporter,
                             events, space, follower)
        worker.start()
        self._started(Part("worker", self._stop_worker))
        if follower is not None:  # after the worker: it stops first, no look half-written
            follower.start()
            self._started(follower)
        watcher.start(scan=False, look=False)
        self._started(Part("watcher", watcher.stop))
        scheduler.start()
        self._started(Part("scheduler", lambda: scheduler.shutdown(wait=False)))
        if self.fleet is not None:  # LISTEN: another process queued or freed a job, or
            # changed the athlete directory, or accepted a moved root (`roots accept`)
            self.fleet.listen(on_athletes=self._look_now)
        # The first scan (what arrived while stopped) at once, on the scheduler's thread:
        # start-up does not wait for a walk of the whole tree (50,000 files: bench restart).
        scheduler.add_job(lambda: watcher.rescan(wait=False), "interval",
                          seconds=cfg.watching.rescan_seconds,
                          id="rescan", next_run_time=datetime.now(UTC))
        web = parts_mod.start_web(cfg, ctx, metrics,
                                  lambda: parts_mod.healthy(
                                      ctx, self.flags.fatal or self.lost_wal.reason),
                                  self._look_now)
        if web is not None:
            self._started(Part("web", lambda: web.stop(5.0)))
        self.net.timetable(ctx)
        if reporter.active:
            scheduler.add_job(reporter.check_stuck, "interval", seconds=STUCK_EVERY,
                              id="stuck")
            self._summary(ctx, reporter.first_summary())
        sdnotify.notify("READY=1\nSTATUS=watching " +
                        ", ".join(str(w.path) for w in cfg.watches))
        log.info("daemon.ready", concurrency=cfg.upload.concurrency,
                 database=engine_mod.mask_url(cfg.database_url))
        # What the config made us import of the optional stacks (tests guard the lazy imports).
        log.debug("daemon.imports", optional=sorted(m for m in OPTIONAL_IMPORTS
                                                    if m in sys.modules))

    def main_loop(self) -> None:
        """Until a signal says stop (or a part cannot recover): the health tick, the worker's
        safety-net poll, and what the signals asked for, all on this thread."""
        assert self.ctx is not None and self.worker is not None
        ctx, worker = self.ctx, self.worker
        now = time.monotonic()
        next_health, next_poll = now + HEALTH_EVERY, now + self.cfg.upload.poll_seconds
        while not self.flags.stop and not self.flags.fatal:
            poll_seconds = self.cfg.upload.poll_seconds
            # A poll interval of a tick or more rides on the ticks: one wake-up, not two.
            until = next_health if poll_seconds >= HEALTH_EVERY else min(next_health, next_poll)
            self._wait(max(0.0, until - time.monotonic()))
            now = time.monotonic()
            ticked = self.flags.health or now >= next_health
            if ticked:
                self.flags.health = False
                self._health(ctx)
                next_health = time.monotonic() + HEALTH_EVERY
            # The worker's safety-net poll, here rather than on the scheduler's thread (two
            # more threads woken): with the tick when it is nearly due, so idle wakes once.
            if now >= next_poll or (ticked and next_poll - now < HEALTH_EVERY / 2):
                worker.poll()
                next_poll = time.monotonic() + self.cfg.upload.poll_seconds
            if self.flags.reload and not self.flags.stop:
                self.flags.reload = False
                self._reload(ctx)
            if self.flags.look:
                self.flags.look = False
                ctx.gate.forget()
                if ctx.watcher.roots is not None:  # `roots accept` (a poke, or its NOTIFY)
                    ctx.watcher.roots.forget()
                if control.stops_running_uploads(ctx.store, time.time()):
                    worker.dispatcher.interrupt()
                worker.wake()
                ctx.watcher.pending_again()
            if self.flags.toggle_limit:
                self.flags.toggle_limit = False
                self.net.toggle_limit()
        sdnotify.notify("STOPPING=1")
        log.info("daemon.stopping")

    def shutdown(self) -> None:
        """Every started part, in the reverse of the order it started; one that fails to stop
        is logged and the others still stop."""
        while self.parts:
            part = self.parts.pop()
            try:
                part.stop()
            except Exception:
                log.exception("daemon.stop_failed", part=part.name)

    def _stop_worker(self) -> None:
        assert self.worker is not None
        self.worker.stop(self.cfg.upload.shutdown_timeout, force=lambda: self.flags.stop > 1)
        unwritten = self.worker.pipeline.accepted.unwritten
        if unwritten:
            self.flags.fatal = f"uploads accepted but not recorded: jobs {sorted(unwritten)}"

    # ---- on the main thread, between signals ---------------------------------------------------

    def _summary(self, ctx: Ctx, when: datetime | None) -> None:
        if when is not None:
            ctx.scheduler.add_job(lambda: self._summary(ctx, ctx.reporter.send_summary()),
                                  "date", run_date=when.astimezone(), id="summary",
                                  replace_existing=True)

    def _health(self, ctx: Ctx) -> None:
        """Supervision tick: threads alive, watch roots present, the job table still the one we
        opened and writable again after a failure. WATCHDOG=1 only when all of that ran."""
        if self.flags.stop:
            return
        try:
            if engine_mod.db_identity(self.cfg.database_url) != self.db_identity:
                self._fatal("the job database was deleted or replaced while the daemon ran; "
                            "restarting to open it afresh")
                return
            if not self.lost_wal.check(ctx, self._fatal):
                return
            if not health.tick(ctx, self.fleet, self._fatal):
                return
            self.net.token_check(self.cfg, ctx)
        except Exception as exc:
            log.exception("service.health_failed")
            if isinstance(exc, OperationalError):
                return
        sdnotify.notify("WATCHDOG=1")

    def _reload(self, ctx: Ctx) -> None:
        cfg = self.cfg
        sdnotify.notify(f"RELOADING=1\nMONOTONIC_USEC={time.monotonic_ns() // 1000}")
        try:
            new = config_mod.load(str(cfg.source))
        except ConfigError as exc:
            log.error("config.reload_failed", reason=str(exc))
            sdnotify.notify("READY=1")
            return
        if self.use_sandbox:
            new = config_mod.with_base_url(new, cfg.api.base_url)
        needs_restart = [name for name, a, b in (
            ("[api] base_url", cfg.api.base_url, new.api.base_url),
            ("[database] url", cfg.database_url, new.database_url),
            ("[upload] concurrency", cfg.upload.concurrency, new.upload.concurrency),
        ) if a != b]
        if needs_restart:
            log.warning("config.restart_needed", keys=needs_restart)
        self.cfg = new
        if not self.use_sandbox:
            self.net.reread_token(new, ctx)
        if (new.api.proxy, new.api.ca_file) != (cfg.api.proxy, cfg.api.ca_file) or \
                "certificate" in ctx.store.notices():
            self.net.swap(new, ctx)
        ctx.worker.reconfigure(new)
        if ctx.follower is not None:
            ctx.follower.reconfigure(new.analysis)
        ctx.watcher.reconfigure(new)
        if ctx.space is not None:
            ctx.space.poke()  # a new limit or folder is looked at now
        fleet_mod.rejoin(new, ctx.store)  # a shared folder added: claimed from now on
        ctx.gate.hours = Gate(ctx.store, new.upload.hours).hours
        self.net.retable(new, ctx)
        ctx.worker.wake()
        log.info("config.reloaded", roots=[str(w.path) for w in new.watches],
                 athletes=len(new.athletes))
        sdnotify.notify("READY=1")
