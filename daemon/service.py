"""Service lifecycle: start the parts in order, wait for a signal, stop them in order.

Signal handlers only set flags. The main thread sleeps in select() on a wake-up socket that
Python's C-level handler writes to, so it reacts at once and uses no CPU while idle.
"""

from __future__ import annotations

import contextlib
import select
import signal
import socket
import time
from dataclasses import dataclass, field
from types import FrameType

import httpx
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from daemon import config as config_mod
from daemon import logs, notify
from daemon.apiclient import ApiClient
from daemon.bandwidth import Limiter
from daemon.config import Config, ConfigError
from daemon.jobs.store import Store
from daemon.sandbox import server as sandbox_server
from daemon.uploader import Uploader
from daemon.watcher import Watcher
from daemon.worker import Worker

log = logs.get("service")


@dataclass
class Flags:
    stop: int = 0  # SIGTERM/SIGINT count: 1 = stop cleanly, 2 = stop at once
    reload: bool = False  # SIGHUP
    fatal: str | None = None  # a part cannot recover: exit non-zero so systemd restarts us
    signals: list[int] = field(default_factory=list)


class Service:
    def __init__(self, cfg: Config, sandbox: bool = False):
        self.cfg = cfg
        self.use_sandbox = sandbox
        self.flags = Flags()
        self._rsock, self._wsock = socket.socketpair()

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            self.flags.reload = True
        else:
            self.flags.stop += 1

    def _install_signals(self) -> None:
        self._rsock.setblocking(False)
        self._wsock.setblocking(False)
        signal.set_wakeup_fd(self._wsock.fileno(), warn_on_full_buffer=False)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._on_signal)

    def _wait(self, timeout: float | None) -> None:
        ready, _, _ = select.select([self._rsock], [], [], timeout)
        if ready:
            try:
                while self._rsock.recv(64):
                    pass
            except BlockingIOError:
                pass

    def run(self) -> int:
        self._install_signals()
        cfg = self.cfg
        sandbox = None
        if self.use_sandbox:
            sandbox = sandbox_server.start(cfg.sandbox.data_dir,
                                           upload_window=cfg.sandbox.upload_window)
            cfg = config_mod.with_base_url(cfg, sandbox.base_url)
            token = sandbox.state.token
            log.info("sandbox.started", base_url=sandbox.base_url,
                     data_dir=str(cfg.sandbox.data_dir))
        else:
            token = config_mod.read_token(cfg)
        logs.add_secret(token)

        store = Store.open(cfg.database_url)
        recovered = store.recover(time.time())
        if recovered:
            log.info("jobs.recovered", count=recovered)
        timeout = httpx.Timeout(connect=cfg.api.connect_timeout, read=cfg.api.read_timeout,
                                write=cfg.api.read_timeout, pool=cfg.api.read_timeout)
        api = ApiClient(cfg.api.base_url, token, timeout)
        limit = cfg.upload.bandwidth_limit
        uploader = Uploader(cfg.upload.stall_seconds, cfg.api.connect_timeout,
                            limiter=Limiter(limit) if limit else None)
        scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(cfg.upload.concurrency + 4)},
            job_defaults={"misfire_grace_time": None, "coalesce": True, "max_instances": 1},
            timezone="UTC")
        worker = Worker(cfg, store, api, uploader, scheduler)
        watcher = Watcher(cfg, store, on_queued=worker.wake, on_fatal=self._fatal)
        worker.on_resettle = watcher.resettle

        scheduler.start()
        worker.start()
        watcher.start()
        scheduler.add_job(watcher.rescan, "interval", seconds=cfg.watching.rescan_seconds,
                          id="rescan")
        ping = notify.watchdog_interval()
        if ping:
            scheduler.add_job(self._heartbeat, "interval", seconds=ping, args=[store],
                              id="watchdog")
        notify.notify("READY=1\nSTATUS=watching " + ", ".join(str(w.path) for w in cfg.watches))
        log.info("daemon.ready", concurrency=cfg.upload.concurrency,
                 database=store.engine.url.render_as_string(hide_password=True))

        while not self.flags.stop and not self.flags.fatal:
            self._wait(None)
            if self.flags.reload and not self.flags.stop:
                self.flags.reload = False
                cfg = self._reload(cfg, worker, watcher)

        # Ordered shutdown: no new files, then no new uploads, then finish or park in-flight.
        notify.notify("STOPPING=1")
        log.info("daemon.stopping")
        watcher.stop()
        worker.stop(cfg.upload.shutdown_timeout, force=lambda: self.flags.stop > 1)
        scheduler.shutdown(wait=False)
        api.close()
        uploader.close()
        store.close()
        if sandbox is not None:
            sandbox.shutdown()
            sandbox.server_close()
        if self.flags.fatal:
            log.error("daemon.failed", reason=self.flags.fatal)
            return 1
        log.info("daemon.stopped")
        return 0

    def _heartbeat(self, store: Store) -> None:
        """WATCHDOG=1 only while the scheduler runs jobs and the database answers."""
        store.counts()
        notify.notify("WATCHDOG=1")

    def _reload(self, cfg: Config, worker: Worker, watcher: Watcher) -> Config:
        notify.notify("RELOADING=1")
        try:
            new = config_mod.load(str(cfg.source))
        except ConfigError as exc:
            log.error("config.reload_failed", reason=str(exc))
            notify.notify("READY=1")
            return cfg
        if self.use_sandbox:
            new = config_mod.with_base_url(new, cfg.api.base_url)
        needs_restart = [name for name, a, b in (
            ("[api]", cfg.api, new.api), ("[database] url", cfg.database_url, new.database_url),
            ("[upload] concurrency", cfg.upload.concurrency, new.upload.concurrency),
            ("[upload] bandwidth_limit", cfg.upload.bandwidth_limit, new.upload.bandwidth_limit),
        ) if a != b]
        if needs_restart:
            log.warning("config.restart_needed", keys=needs_restart)
        worker.cfg = new
        watcher.reconfigure(new)
        log.info("config.reloaded", roots=[str(w.path) for w in new.watches],
                 athletes=len(new.athletes))
        notify.notify("READY=1")
        return new

    def _fatal(self, reason: str) -> None:
        """Called from another thread: wake the main loop to stop and exit non-zero."""
        self.flags.fatal = reason
        with contextlib.suppress(OSError):
            self._wsock.send(b"\0")
