"""Service lifecycle: start the parts in order, supervise them, stop them in the reverse order.

Signal handlers only set flags. The main thread sleeps in select() on a wake-up socket that
Python's C-level handler writes to, so it reacts at once and uses no CPU while idle. Every part
that owns a thread is checked by the health tick and restarted (or the process exits non-zero
for systemd) when it died.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import signal
import socket
import time
from dataclasses import dataclass, field
from datetime import datetime
from types import FrameType
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy.exc import OperationalError

from daemon import config as config_mod
from daemon import logs, sdnotify
from daemon.alerts.reporting import STUCK_EVERY, Reporter
from daemon.config import Config, ConfigError
from daemon.jobs import engine as engine_mod
from daemon.jobs import fleet
from daemon.jobs.store import DatabaseUnavailable, Store
from daemon.net import clients
from daemon.net.api import ApiClient
from daemon.net.bandwidth import Limiter, Timetable, apply_timetable, parse_limit
from daemon.net.upload import Uploader
from daemon.sandbox import server as sandbox_server
from daemon.service import control
from daemon.service import parts as parts_mod
from daemon.service.attention import Attention
from daemon.service.parts import Ctx
from daemon.service.runtime import StateFile, state_path
from daemon.watch import Watcher
from daemon.watch import settle as settle_mod
from daemon.watch.roots import Roots
from daemon.work import Worker
from daemon.work.gate import Gate

log = logs.get("service")
# Seconds between supervision ticks, run by the main thread between signals: a stat or two
# and no table scan, so an idle daemon wakes once per tick and nowhere else.
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


MALLOC_ARENAS = 2
M_ARENA_MAX = -8  # glibc's mallopt parameter


def limit_malloc_arenas() -> None:
    """glibc gives each thread that allocates its own heap arena, and each keeps freed 2 MiB
    upload chunks for reuse: with a dozen threads that took peak RSS to 80.7 MiB for one
    upload (bench; 77.2 MiB with two arenas). Two are plenty for threads that mostly wait."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to do
        ctypes.CDLL(None).mallopt(M_ARENA_MAX, MALLOC_ARENAS)


class Service:
    def __init__(self, cfg: Config, sandbox: bool = False):
        self.cfg = cfg
        self.use_sandbox = sandbox
        self.flags = Flags()
        self._rsock, self._wsock = socket.socketpair()
        self.token = ""
        self.limiter: Limiter | None = None
        self.table: Timetable | None = None
        self.fleet_parts: fleet.Parts | None = None

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
        ready, _, _ = select.select([self._rsock], [], [], timeout)
        if ready:
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

    def run(self) -> int:
        self._install_signals()
        limit_malloc_arenas()
        cfg = self.cfg
        parts: list[tuple[str, Any]] = []  # stopped in reverse order, whatever happens
        try:
            if self.use_sandbox:
                sandbox = sandbox_server.start(cfg.sandbox.data_dir,
                                               upload_window=cfg.sandbox.upload_window)
                parts.append(("sandbox", sandbox))
                cfg = config_mod.with_base_url(cfg, sandbox.base_url)
                self.token = sandbox.state.token
                log.info("sandbox.started", base_url=sandbox.base_url,
                         data_dir=str(cfg.sandbox.data_dir))
            else:
                self.token = config_mod.read_token(cfg)
            logs.add_secret(self.token)
            lock = engine_mod.acquire_instance_lock(cfg.database_url)
            if lock is not None:
                parts.append(("lock", lock))
            self.cfg = cfg
            self._serve(cfg, parts)
        finally:
            for name, part in reversed(parts):
                try:
                    parts_mod.stop_part(name, part, self)
                except Exception:
                    log.exception("daemon.stop_failed", part=name)
        if self.flags.fatal:
            log.error("daemon.failed", reason=self.flags.fatal)
            return 1
        log.info("daemon.stopped")
        return 0

    def _serve(self, cfg: Config, parts: list[tuple[str, Any]]) -> None:
        problem = engine_mod.check_writable(cfg.database_url)
        if problem:
            raise DatabaseUnavailable(problem)
        store = Store.open(cfg.database_url, migrate=True)
        parts.append(("store", store))
        # Our node name; in a fleet, our name taken and the heartbeat thread started. It stops
        # after the worker (parts stop in reverse), so the lease holds until uploads drained.
        fleet_parts = fleet.join(cfg, store, on_lost=self._fatal)
        self.fleet_parts = fleet_parts
        if fleet_parts is not None:
            parts.append(("fleet", fleet_parts))
        # In a fleet every due time is compared on the database's clock (Fleet.wall).
        wall = fleet_parts.fleet.wall if fleet_parts is not None else time.time
        db_file = engine_mod.sqlite_path(cfg.database_url)
        self.db_identity = engine_mod.db_identity(cfg.database_url)
        state = StateFile(state_path(db_file))
        state.write({"pid": os.getpid(), "attention": {}})
        parts.append(("state", state))
        reporter = Reporter(cfg.notify, store)
        parts.append(("reporter", reporter))
        reporter.start()
        attention = Attention(store, state, on_change=reporter.notice)
        recovered = store.recover(wall())
        if recovered:
            log.info("jobs.recovered", count=recovered)
        api, uploader = self._clients(cfg)
        parts.append(("api", api))
        parts.append(("uploader", uploader))
        gate = Gate(store, cfg.upload.hours)
        fence = fleet_parts.fence_wait if fleet_parts is not None else lambda: 0.0
        events = parts_mod.WorkEvents(reporter)
        # In a fleet, no upload reaches its closing boundary while this node is fenced.
        worker = Worker(cfg, store, api, uploader, events, on_db_error=attention.db_error,
                        gate=lambda: max(gate.seconds(), fence()), wall=wall,
                        fence=fleet_parts.fleet if fleet_parts is not None else None)
        reporter.held = lambda: gate.check()[1]
        scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(4)},
            job_defaults={"misfire_grace_time": None, "coalesce": True, "max_instances": 1},
            timezone="UTC")
        watcher = Watcher(cfg, store, on_queued=worker.wake, on_db_error=attention.db_error,
                          on_root=attention.root,
                          on_root_deleted=self._health_now, wall=wall)
        events.watcher = watcher
        watcher.on_failed = reporter.failed
        # Which watch folders are there (an unmounted share is not): before the first claim.
        watcher.roots = events.roots = Roots(
            store, cfg.watches, on_attention=attention.condition, on_back=watcher.root_there)
        watcher.roots.check()
        ctx = Ctx(store, api, worker, watcher, attention, scheduler, gate, reporter, events)
        # Started in this order, stopped in the reverse: no timers (nothing restarts what is
        # being stopped), then no new files, then no new uploads (in-flight ones finish or go
        # back to the queue).
        worker.start()
        parts.append(("worker", worker))
        watcher.start()
        parts.append(("watcher", watcher))
        scheduler.start()
        parts.append(("scheduler", scheduler))
        fleet.start(fleet_parts, worker.wake)  # takeovers wake the worker; LISTEN
        scheduler.add_job(watcher.rescan, "interval", seconds=cfg.watching.rescan_seconds,
                          id="rescan")
        web = parts_mod.start_web(cfg, ctx, lambda: parts_mod.healthy(ctx, self.flags.fatal),
                                  self._look_now)
        if web is not None:
            parts.append(("web", web))
        self._timetable(ctx)
        if reporter.active:
            scheduler.add_job(reporter.check_stuck, "interval", seconds=STUCK_EVERY,
                              id="stuck")
            self._summary(ctx, reporter.first_summary())
        sdnotify.notify("READY=1\nSTATUS=watching " + ", ".join(str(w.path) for w in cfg.watches))
        log.info("daemon.ready", concurrency=cfg.upload.concurrency,
                 database=engine_mod.mask_url(cfg.database_url))

        now = time.monotonic()
        next_health, next_poll = now + HEALTH_EVERY, now + cfg.upload.poll_seconds
        while not self.flags.stop and not self.flags.fatal:
            # A poll interval of a tick or more rides on the ticks: one wake-up, not two.
            until = next_health if cfg.upload.poll_seconds >= HEALTH_EVERY else \
                min(next_health, next_poll)
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
                next_poll = time.monotonic() + cfg.upload.poll_seconds
            if self.flags.reload and not self.flags.stop:
                self.flags.reload = False
                cfg = self._reload(cfg, ctx)
            if self.flags.look:
                self.flags.look = False
                gate.forget()
                if control.stops_running_uploads(store, time.time()):
                    worker.dispatcher.interrupt()
                worker.wake()
                watcher.pending_again()
            if self.flags.toggle_limit:
                self.flags.toggle_limit = False
                off = self.limiter.toggle()
                log.info("bandwidth.toggled", limit="off" if off else "on",
                         rate=self.limiter.rate)

        sdnotify.notify("STOPPING=1")
        log.info("daemon.stopping")

    def _timetable(self, ctx: Ctx) -> None:
        """The bandwidth slot in force now, and a timer for the next slot."""
        if self.limiter is None or self.table is None:
            return
        nxt = apply_timetable(self.limiter, self.table, datetime.now())
        if nxt is not None:
            ctx.scheduler.add_job(self._timetable, "date", run_date=nxt.astimezone(),
                                  args=[ctx], id="timetable", replace_existing=True)
            log.info("bandwidth.slot", rate=self.limiter.rate, until=nxt.isoformat())

    def _summary(self, ctx: Ctx, when: datetime | None) -> None:
        if when is not None:
            ctx.scheduler.add_job(lambda: self._summary(ctx, ctx.reporter.send_summary()),
                                  "date", run_date=when.astimezone(), id="summary",
                                  replace_existing=True)

    def _clients(self, cfg: Config) -> tuple[ApiClient, Uploader]:
        self.table = parse_limit(cfg.upload.bandwidth_limit)
        if self.limiter is None:  # one limiter for the life of the process: changed live
            self.limiter = Limiter(self.table.rate_at(datetime.now()))
        return clients.build(cfg, self.token, self.limiter, self.table)

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
            ctx.watcher.observers.check()
            ctx.watcher.check_roots()
            if not ctx.watcher.queue.alive():
                log.error("watch.settle_died")
                ctx.watcher.queue.start()
                ctx.watcher.rescan()
            if (problem := settle_mod.supervise(ctx.watcher.queue, ctx.attention)) is not None:
                self._fatal(problem)
                return
            ctx.worker.dispatcher.check()
            if self.fleet_parts is not None:
                self.fleet_parts.check()
            if "database" in ctx.attention.conditions():
                try:  # a real write (a deletion of nothing may pass on a full disk)
                    ctx.store.set_notice("_probe", "", None, time.time())
                    ctx.store.clear_notice("_probe")
                    ctx.attention.db_error(None)
                    ctx.watcher.rescan()
                except OperationalError:
                    pass
            ctx.attention.sync()
            self._token_check(ctx)
        except Exception as exc:
            log.exception("service.health_failed")
            if isinstance(exc, OperationalError):
                return
        sdnotify.notify("WATCHDOG=1")

    def _token_check(self, ctx: Ctx) -> None:
        """While credentials are rejected, pick up a replaced token file at once."""
        if ctx.worker.reservations.paused_for() <= 0 or self.use_sandbox:
            return
        if "credentials" not in ctx.store.notices():
            return
        self._reread_token(ctx)

    def _reread_token(self, ctx: Ctx) -> None:
        try:
            token = config_mod.read_token(self.cfg)
        except ConfigError as exc:
            log.error("config.token_unreadable", reason=str(exc))
            return
        if token != self.token:
            self.token = token
            logs.add_secret(token)
            ctx.api.set_token(token)
            notice = ctx.worker.reservations.lift()
            if notice == "credentials" or "credentials" in ctx.store.notices():
                ctx.store.clear_notice("credentials")  # the next reservation tells anew
            log.info("api.token_replaced")
            ctx.worker.wake()

    def _swap_clients(self, cfg: Config, ctx: Ctx) -> None:
        """New proxy or trust settings (or a certificate problem someone may have fixed):
        fresh clients for new requests. The one uploader takes the new storage client, so
        uploads in flight finish on the old one yet a shutdown or `pause --now` still aborts
        them; the old client is closed when they end."""
        try:
            api, uploader = self._clients(cfg)
        except ConfigError as exc:
            log.error("config.reload_failed", reason=str(exc))
            return
        old_api = ctx.api
        ctx.api = ctx.worker.pipeline.api = api
        ctx.worker.pipeline.uploader.adopt(uploader)
        old_api.close()
        if ctx.worker.reservations.lift() or "certificate" in ctx.store.notices():
            ctx.store.clear_notice("certificate")  # the next reservation tells anew
        log.info("net.clients_replaced", proxy=bool(cfg.api.proxy), ca_file=str(cfg.api.ca_file))
        ctx.worker.wake()

    def _reload(self, cfg: Config, ctx: Ctx) -> Config:
        sdnotify.notify(f"RELOADING=1\nMONOTONIC_USEC={time.monotonic_ns() // 1000}")
        try:
            new = config_mod.load(str(cfg.source))
        except ConfigError as exc:
            log.error("config.reload_failed", reason=str(exc))
            sdnotify.notify("READY=1")
            return cfg
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
            self._reread_token(ctx)
        if (new.api.proxy, new.api.ca_file) != (cfg.api.proxy, cfg.api.ca_file) or \
                "certificate" in ctx.store.notices():
            self._swap_clients(new, ctx)
        ctx.worker.reconfigure(new)
        ctx.watcher.reconfigure(new)
        fleet.rejoin(new, ctx.store)  # a shared folder added: claimed from now on
        ctx.gate.hours = Gate(ctx.store, new.upload.hours).hours
        self.table = parse_limit(new.upload.bandwidth_limit)
        self._timetable(ctx)
        ctx.worker.wake()
        log.info("config.reloaded", roots=[str(w.path) for w in new.watches],
                 athletes=len(new.athletes))
        sdnotify.notify("READY=1")
        return new
