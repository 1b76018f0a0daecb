"""The running service's parts: what the main loop holds, the console wired to them, and how each
part is stopped (in the reverse of the order it was started, by service.py)."""

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
from daemon.watch import Watcher
from daemon.watch.roots import Roots
from daemon.work import Worker
from daemon.work.events import Events
from daemon.work.gate import Gate

if TYPE_CHECKING:  # the console is imported only when it runs
    from daemon.web import Metrics

log = logs.get("service")
T = TypeVar("T")


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


class WorkEvents(Events):
    """The work's events (work/events.py), routed to the parts that hear them. The watcher, its
    folder check and the console's metrics come up after the worker (the watcher wakes it):
    they are connected here as they do, and until then nothing is told or everything is
    there, as before."""

    def __init__(self, reporter: Reporter):
        self.reporter = reporter
        self.watcher: Watcher | None = None
        self.roots: Roots | None = None
        self.metrics: Metrics | None = None

    def failed(self, path: str, reason: str) -> None:
        self.reporter.failed(path, reason)

    def notice(self, name: str, message: str | None) -> None:
        self.reporter.notice(name, message)

    def resettle(self, path: str) -> None:
        if self.watcher is not None:
            self.watcher.resettle(path)

    def reserved(self) -> None:
        if self.metrics is not None:
            self.metrics.reserved()

    def upload_finished(self, outcome: str, size: int, seconds: float, wall: float) -> None:
        if self.metrics is not None:
            self.metrics.upload_finished(outcome, size, seconds, wall)

    def folder_there(self, job: Job) -> bool:
        return self.roots is None or self.roots.job_there(job)


class Owner(Protocol):
    """What stopping needs of the service: its config and its signal flags."""
    cfg: Config
    flags: Any


def healthy(ctx: Ctx, fatal: str | None) -> tuple[bool, str]:
    """/healthz: watching every folder, the job table writable, nothing fatal."""
    problems = [m for n, m in ctx.attention.conditions().items()
                if n in ("watch_folder", "database")]
    if fatal:
        problems.append(fatal)
    return (not problems, "; ".join(problems) or "ok")


def start_web(cfg: Config, ctx: Ctx, health: Callable[[], tuple[bool, str]],
              on_change: Callable[[], None]) -> Any:
    """The web console, in its own thread; a console that cannot start (its port taken) is
    shown as ATTENTION, and uploads go on without it."""
    if not cfg.web.listen:
        return None
    from daemon.web import Metrics, StoreBackend, start_console

    metrics = Metrics()
    backend = StoreBackend(
        ctx.store, cfg.athletes, health=health, gate_reason=lambda: ctx.gate.check()[1],
        runtime=lambda: {"pid": os.getpid(), "attention": ctx.attention.conditions()},
        on_change=on_change, lease=cfg.node.lease_seconds)
    # While the job table is away (a PostgreSQL outage), /metrics serves what was last known.
    metrics.bind(counts=last_known(ctx.store.counts), paused=last_known(backend.paused))
    ctx.events.metrics = metrics
    try:
        web = start_console(cfg.web.listen, cfg.web.password_file, backend, metrics)
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


def stop_part(name: str, part: Any, owner: Owner) -> None:
    if name == "watcher":
        part.stop()
    elif name == "scheduler":
        part.shutdown(wait=False)
    elif name == "worker":
        part.stop(owner.cfg.upload.shutdown_timeout, force=lambda: owner.flags.stop > 1)
        if part.pipeline.accepted.unwritten:
            owner.flags.fatal = (f"uploads accepted but not recorded: jobs "
                                 f"{sorted(part.pipeline.accepted.unwritten)}")
    elif name == "sandbox":
        part.shutdown()
        part.server_close()
    elif name == "reporter":
        part.close()
    elif name == "web":
        part.stop(5.0)
    elif name == "state":
        part.close(remove=owner.flags.fatal is None)
    else:  # api, uploader, store, lock
        part.close()
