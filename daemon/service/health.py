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
from daemon.service.fleet import FleetPart
from daemon.service.parts import Ctx
from daemon.watch import settle as settle_mod

log = logs.get("service")


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
    if ctx.space is not None:
        ctx.space.revive()
    if fleet is not None:
        fleet.check()
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
