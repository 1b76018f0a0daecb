"""The fleet's threads, owned and supervised by the service: the heartbeat, which runs the lease
protocol (jobs/fleet.py, on a connection of its own) every lease/3 from before the first claim
until the last upload has drained at stop, and the LISTEN thread (jobs/listen.py). On SQLite
(one node) none of this runs; `join` only tells the store its node name."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from daemon import logs
from daemon.jobs.engine import ATHLETES_CHANNEL, ROOTS_CHANNEL
from daemon.jobs.fleet import Fleet
from daemon.jobs.listen import Listener
from daemon.jobs.shares import shared_names
from daemon.jobs.store import Store

log = logs.get("fleet")


class Heartbeat:
    """The node's heartbeat thread (not on the scheduler, which stops first). `wake` after a
    takeover; `on_lost` when another station took our name."""

    def __init__(self, fleet: Fleet, wake: Callable[[], None] = lambda: None,
                 on_lost: Callable[[str], None] = lambda reason: None):
        self.fleet, self.wake, self.on_lost = fleet, wake, on_lost
        self._stop = threading.Event()
        self.thread: threading.Thread | None = None

    def start(self) -> Heartbeat:
        self.thread = threading.Thread(target=self._run, name="fleet-beat", daemon=True)
        self.thread.start()
        return self

    def alive(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def _run(self) -> None:
        while not self._stop.wait(self.fleet.lease / 3):
            if self.fleet.beat():
                self.wake()
            if self.fleet.lost:
                self.on_lost(self.fleet.lost)
                return

    def close(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self.thread is not None:
            self.thread.join(timeout)


class FleetPart:
    """The fleet pieces one node runs: the heartbeat from `join`, the listener once the worker
    runs (`listen`); stopped by the service after the worker, so the lease holds until
    uploads drained. Takeovers and NOTIFYs call `wake`."""

    name = "fleet"

    def __init__(self, fleet: Fleet, wake: Callable[[], None],
                 on_lost: Callable[[str], None]):
        self.fleet, self._wake = fleet, wake
        self.heart = Heartbeat(fleet, wake, on_lost)
        self.listener: Listener | None = None
        self.athletes: Listener | None = None  # the athlete directory's and roots' channels

    def listen(self, on_athletes: Callable[[], None] | None = None) -> None:
        """The LISTEN threads: jobs (wake the worker), and the athlete directory and the watch
        roots (`roots accept`), whose change makes this node look at its waiting files (and
        its roots' identities) again."""
        engine = self.fleet.store.engine
        self.listener = Listener(engine, self._wake).start()
        if on_athletes is not None:
            self.athletes = Listener(engine, on_athletes,
                                     (ATHLETES_CHANNEL, ROOTS_CHANNEL)).start()

    def check(self) -> None:
        """Supervision: a heartbeat thread that died is logged and started again."""
        if self.heart.thread is not None and not self.heart.alive() and not self.fleet.lost:
            log.error("fleet.heartbeat_died", node=self.fleet.node)
            self.heart.start()

    def fence_wait(self) -> float:
        """For the worker's gate: seconds before a claim, while this node is fenced."""
        return 1.0 if self.fleet.fenced() else 0.0

    def stop(self) -> None:
        for listener in (self.listener, self.athletes):
            if listener is not None:
                listener.close()
        self.heart.close()
        if not self.fleet.lost:
            self.fleet.sign_off()
        self.fleet.close()


def join(cfg: Any, store: Store, wake: Callable[[], None],
         on_lost: Callable[[str], None]) -> FleetPart | None:
    """Right after the store opens, before recovery: tell it who we are; in a fleet, take our
    name (NameTaken when a live station holds it) and start beating, so others see us before
    we claim anything and our lease holds through a long start-up rescan."""
    store.set_node(cfg.node.name, shared_names(cfg.watches))
    if not store.fleet:
        return None
    fleet = Fleet(store, cfg.node.name, cfg.node.lease_seconds)
    fleet.register()
    part = FleetPart(fleet, wake, on_lost)
    part.heart.start()
    return part


def rejoin(cfg: Any, store: Store) -> None:
    """After a reload: shared folders added (or removed) are claimed from now on."""
    store.set_node(store.node or cfg.node.name, shared_names(cfg.watches))
