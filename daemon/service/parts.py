"""The running service's parts: what the main loop holds, the events the work tells the rest,
the console wired to them, and the one shape every started part has for stopping (`Part`),
stopped in the reverse of the order it was started (lifecycle.py's shutdown)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from apscheduler.schedulers.background import BackgroundScheduler

from daemon import logs
from daemon.alerts.reporting import Reporter
from daemon.config import Config
from daemon.jobs.models import Job
from daemon.jobs.store import Store
from daemon.net.api import ApiClient
from daemon.service.attention import Attention
from daemon.station import recording
from daemon.station.space import SpaceWatch
from daemon.watch.intake import Watcher
from daemon.work.events import Events
from daemon.work.gate import Gate
from daemon.work.landed import UNANSWERED
from daemon.work.unanswered import Unanswered
from daemon.work.worker import Worker

if TYPE_CHECKING:  # the console is imported only when it runs
    from daemon.analysis.follower import Follower
    from daemon.web import Metrics

log = logs.get("service")
T = TypeVar("T")


class Stoppable(Protocol):
    """A started part: its name for the logs, and how it stops."""
    name: str

    def stop(self) -> None: ...


@dataclass
class Part:
    """A started part whose own object stops otherwise (close(), shutdown()...): `stop` says how."""
    name: str
    stop: Callable[[], None]


@dataclass
class Ctx:
    store: Store
    api: ApiClient
    worker: Worker
    watcher: Watcher
    attention: Attention
    scheduler: BackgroundScheduler
    gate: Gate
    reporter: Reporter
    events: WorkEvents
    space: SpaceWatch | None = None  # the low-disk warning's thread
    follower: Follower | None = None  # following uploaded captures ([analysis] follow)


class WorkEvents(Events):
    """The work's events (work/events.py), routed to the parts that hear them; all of them
    exist before the worker is made (the console's metrics only when it runs)."""

    def __init__(self, reporter: Reporter, watcher: Watcher, metrics: Metrics | None,
                 follower: Follower | None = None,
                 condition: Callable[[str, str | None], None] = lambda n, m: None):
        self.reporter, self.watcher, self.metrics = reporter, watcher, metrics
        self.follower = follower
        # Lost answers whose capture reads keep failing: an ATTENTION (service/attention.py).
        self.unanswered = Unanswered(condition)

    def uploaded(self) -> None:
        if self.follower is not None:
            self.follower.wake()

    def failed(self, path: str, reason: str) -> None:
        self.reporter.failed(path, reason)

    def notice(self, name: str, message: str | None) -> None:
        self.reporter.notice(name, message)

    def capture_read(self, job_id: int, since: float | None) -> None:
        self.unanswered.read(job_id, since)

    def resettle(self, path: str) -> None:
        self.watcher.resettle(path)

    def reserved(self) -> None:
        if self.metrics is not None:
            self.metrics.reserved()

    def upload_finished(self, outcome: str, size: int, seconds: float, wall: float) -> None:
        if self.metrics is not None:
            self.metrics.upload_finished(outcome, size, seconds, wall)

    def folder_there(self, job: Job) -> bool:
        roots = self.watcher.roots
        return roots is None or roots.job_there(job)


def new_events(reporter: Reporter, watcher: Watcher, metrics: Metrics | None,
               follower: Follower | None, attention: Attention) -> WorkEvents:
    """The work's events; an earlier run's unanswered-reads notice goes (this run's first
    failed read puts back what still holds: the list is in memory)."""
    attention.store.clear_notice(UNANSWERED)
    return WorkEvents(reporter, watcher, metrics, follower, attention.condition)


def new_follower(cfg: Config, store: Store, api: ApiClient, reporter: Reporter,
                 attention: Attention, metrics: Metrics | None,
                 wall: Callable[[], float]) -> Follower | None:
    """The follower of uploaded captures (not started), or None with `[analysis] follow =
    false`. Every read of captures is paced from here on, the lost-answer check's too."""
    from daemon.analysis.follower import Follower
    from daemon.analysis.results import Result, notice_line
    from daemon.net.pace import Pace

    api.pace = Pace(cfg.analysis.max_rate)
    if not cfg.analysis.follow:
        return None

    def told(result: Result) -> None:
        if metrics is not None:
            metrics.analysed(result.status)
        if result.status != "completed":
            reporter.analysed(notice_line(result))

    if metrics is not None:
        metrics.bind(following=last_known(lambda: store.analysis.counts()["processing"]))
    return Follower(store.analysis, api, cfg.analysis, wall, told, attention.condition,
                    fleet=store.fleet)


def space_watch(cfg: Callable[[], Config], store: Store, attention: Attention,
                wall: Callable[[], float]) -> SpaceWatch:
    """The low-disk warning's thread (not started), which also runs [retention]'s looks."""
    from daemon.station import space
    from daemon.station.retention import NOTICE, Retention

    store.clear_notice(NOTICE)  # an earlier run's: said again at the first look if still so
    kept = Retention(store.retention, lambda: cfg().retention, lambda: cfg().watches,
                     attention.condition, wall)
    return space.SpaceWatch(
        lambda: space.watched_paths((str(w.path) for w in cfg().watches), cfg().database_url),
        lambda: space.parse_threshold(cfg().station.low_disk), attention.condition,
        then=kept.look, fast=lambda: cfg().retention.on)


def each(*hooks: Callable[[str], None]) -> Callable[[str], None]:
    """One hook for the intake's file events that calls each of `hooks` in turn."""
    def call(path: str) -> None:
        for hook in hooks:
            hook(path)
    return call


def healthy(ctx: Ctx, fatal: str | None) -> tuple[bool, str]:
    """/healthz: watching every folder, the job table writable, nothing fatal."""
    problems = [m for n, m in ctx.attention.conditions().items()
                if n in ("watch_folder", "database")]
    if fatal:
        problems.append(fatal)
    return (not problems, "; ".join(problems) or "ok")


def recordings(cfg: Callable[[], Config], store: Store, attention: Attention,
               cap: Callable[[float], None], wake: Callable[[], None]) -> recording.Recordings:
    """The recordings under the watch folders (station/recording.py), started: "pause" kept as
    a notice (`status`, the console), a rate as the limiter's cap. An earlier run's notice goes."""
    store.clear_notice(recording.NOTICE)

    def hold(message: str | None) -> None:
        attention.condition(recording.NOTICE, message)
        if message is None:
            wake()  # the claims held by it go now, not at their next look

    found = recording.Recordings(lambda: recording.parse_policy(cfg().upload.while_recording),
                                 lambda: cfg().upload.settle_seconds, hold, cap)
    found.start()
    return found


def new_metrics(cfg: Config) -> Metrics | None:
    """The console's metrics, made before the worker that feeds them; None without a console."""
    if not cfg.web.listen:
        return None
    from daemon.web import Metrics

    return Metrics()


def start_web(cfg: Config, ctx: Ctx, metrics: Metrics | None,
              health: Callable[[], tuple[bool, str]], on_change: Callable[[], None]) -> Any:
    """The web console, in its own thread; a console that cannot start (its port taken) is
    shown as ATTENTION, and uploads go on without it."""
    if not cfg.web.listen or metrics is None:
        return None
    from daemon.web import StoreBackend, start_console

    backend = StoreBackend(
        ctx.store, cfg.athletes, health=health, gate_reason=lambda: ctx.gate.check()[1],
        runtime=lambda: {"pid": os.getpid(), "attention": ctx.attention.conditions()},
        on_change=on_change, lease=cfg.node.lease_seconds)
    # While the job table is away (a PostgreSQL outage), /metrics serves what was last known.
    metrics.bind(counts=last_known(ctx.store.counts), paused=last_known(backend.paused))
    try:
        web = start_console(cfg.web.listen, cfg.web.password_file, backend, metrics,
                            trusted_proxies=cfg.web.trusted_proxies)
    except (ValueError, OSError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        ctx.attention.condition("console", f"the console cannot listen on "
                                           f"{cfg.web.listen}: {reason}")
        return None
    log.info("web.listening", listen=cfg.web.listen)
    return web


def last_known(read: Callable[[], T]) -> Callable[[], T]:
    """`read()`, or its last answer while it fails (the first failure still raises)."""
    seen: list[T] = []

    def answer() -> T:
        try:
            seen[:] = [read()]
        except Exception:
            if not seen:
                raise
        return seen[0]

    return answer
