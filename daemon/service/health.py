"""The supervision tick, run by the main thread between signals: every part that owns a thread
is checked and restarted when it died (or the service is told to exit non-zero, for systemd),
the watch roots looked at, and the job table probed while it was unwritable. No table scan,
so an idle daemon wakes once per tick and nowhere else. The watch roots' file systems are
never touched on this thread: each root is looked at (and walked) on its own thread, and a
root that hangs is shown not answering (watch/lookouts.py)."""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy.exc import OperationalError

from daemon import logs
from daemon.jobs import wal as wal_mod
from daemon.service.fleet import FleetPart
from daemon.service.parts import Ctx
from daemon.watch import settle as settle_mod

log = logs.get("service")


class LostWal:
    """The job table's WAL deleted under the running daemon: every command fails ("disk I/O
    error") until a restart, while the daemon's own connections go on in the unlinked file.
    The first tick that sees it copies those commits into the database file and makes /healthz
    say so; the next copies what came since and has the service exit non-zero (systemd
    restarts it, which opens the file afresh): one tick in which a monitor sees why."""

    def __init__(self, url: str):
        self.wal = wal_mod.OpenWal(url)
        self.reason: str | None = None

    def check(self, ctx: Ctx, fatal: Callable[[str], None]) -> bool:
        """False when the service is to stop (`fatal` was told)."""
        wal = self.wal.deleted()
        if wal is None:
            return True
        failed = wal_mod.checkpoint_wal(ctx.store.engine)
        saved = "its commits are in the database file" if failed is None else \
            f"copying its commits into the database file failed ({failed}); retried at exit"
        first = self.reason is None
        self.reason = (f"the job database's WAL file {wal} was deleted while the daemon ran "
                       f"(every command fails until a restart); {saved}; restarting")
        if first:
            log.error("db.wal_deleted", wal=str(wal), checkpoint_failed=failed)
            return True
        fatal(self.reason)
        return False


def tick(ctx: Ctx, fleet: FleetPart | None, fatal: Callable[[str], None]) -> bool:
    """One supervision round; False when it stopped early (a fatal problem, found here)."""
    watcher = ctx.watcher
    watcher.look()
    if not watcher.queue.alive():
        log.error("watch.settle_died")
        watcher.queue.start()
        watcher.rescan(wait=False)
    if (problem := settle_mod.supervise(watcher.queue, ctx.attention)) is not None:
        fatal(problem)
        return False
    ctx.worker.dispatcher.check()
    if ctx.follower is not None:
        ctx.follower.revive()
    if ctx.space is not None:
        ctx.space.revive()
    if fleet is not None:
        fleet.check()
    ctx.events.unanswered.refresh()
    if "database" in ctx.attention.conditions():
        try:  # a real write (a deletion of nothing may pass on a full disk)
            ctx.store.set_notice("_probe", "", None, time.time())
            ctx.store.clear_notice("_probe")
            ctx.attention.db_error(None)
            watcher.rescan(wait=False)
        except OperationalError:
            pass
    if ctx.attention.descriptors_back():
        watcher.rescan(wait=False)  # what waited for a descriptor is looked at now
    ctx.attention.sync()
    return True
