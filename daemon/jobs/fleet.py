"""Fleet mode: several daemons (nodes) on one PostgreSQL job table.

- Heartbeats: each node upserts its row in `nodes` every lease/3 (the service's scheduler).
- Takeover: any live node requeues the in-flight jobs of a node silent longer than the lease;
  their claim_no is bumped, so the presumed-dead node's later writes change nothing
  (Store._move raises TakenOver). Upload policies are never stored: a takeover reserves afresh.
- Wake-ups: one listener thread per node LISTENs on its own connection and wakes the worker when
  another node queues work; idle, it sleeps in select() with no timeout.
On SQLite (one node) none of this runs; `join` only tells the store its node name.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import select as sql_select
from sqlalchemy import update
from sqlalchemy.exc import SQLAlchemyError

from daemon import logs
from daemon.jobs import engine as engine_mod
from daemon.jobs import paths
from daemon.jobs.models import IN_FLIGHT, Job, JobState, Node, Reservation
from daemon.jobs.store import Store, coarse

log = logs.get("fleet")
LISTEN_BACKOFF = (0.5, 30.0)


def takeover_reason(node: str) -> str:
    return f"station {node} stopped answering; another station takes over"


def waiting_reason(node: str) -> str:
    return f"waits for station {node}, which is not running"


class Fleet:
    """This node's heartbeat, and the takeover of dead nodes' in-flight jobs. `clock`: epoch
    seconds; None = the database's clock (nodes' own clocks may disagree)."""

    def __init__(self, store: Store, node: str, lease_seconds: float,
                 clock: Callable[[], float] | None = None, host: str | None = None,
                 monotonic: Callable[[], float] = time.monotonic):
        self.store, self.node, self.lease = store, node, lease_seconds
        self.clock, self.monotonic = clock, monotonic
        self.host = host if host is not None else socket.gethostname()
        self.started_at: float | None = None
        # Since when our beats have succeeded without a gap. Takeover waits a full lease after
        # any gap: when the database itself was away, every node's beat is old, none is dead.
        self._ok_since: float | None = None

    def _now(self, conn: Any) -> float:
        return self.clock() if self.clock is not None else engine_mod.db_now(conn)

    def beat(self) -> list[int]:
        """Record that this node is alive; then take over dead nodes' jobs (ids returned)."""
        try:
            with engine_mod.write_tx(self.store.engine) as conn:
                now = self._now(conn)
                if self.started_at is None:
                    self.started_at = now
                ins = engine_mod.insert_for(conn)(Node).values(
                    name=self.node, heartbeat_at=now, started_at=self.started_at,
                    host=self.host)
                conn.execute(ins.on_conflict_do_update(
                    index_elements=[Node.name],
                    set_={"heartbeat_at": now, "started_at": self.started_at,
                          "host": self.host}))
        except SQLAlchemyError as exc:
            if self._ok_since is not None:
                log.warning("fleet.beat_failed", node=self.node,
                            reason=str(getattr(exc, "orig", exc))[:200])
            self._ok_since = None
            return []
        if self._ok_since is None:
            self._ok_since = self.monotonic()
            log.info("fleet.beating", node=self.node, lease_seconds=self.lease)
        if self.monotonic() - self._ok_since < self.lease:
            return []
        try:
            return self.takeover()
        except SQLAlchemyError as exc:
            log.warning("fleet.takeover_failed", reason=str(getattr(exc, "orig", exc))[:200])
            return []

    def takeover(self) -> list[int]:
        """Requeue the in-flight jobs of every node whose beat is older than the lease."""
        with engine_mod.write_tx(self.store.engine) as conn:
            now = self._now(conn)
            live = sql_select(Node.name).where(Node.heartbeat_at >= now - self.lease)
            rows = list(conn.execute(sql_select(Job.id, Job.node).where(
                Job.state.in_([str(s) for s in IN_FLIGHT]), Job.node != self.node,
                Job.node.not_in(live)).with_for_update(skip_locked=True)))
            for row in rows:
                # Guarded like any in-flight write: if the holder wrote meanwhile, skip it.
                conn.execute(update(Job).where(
                    Job.id == row.id, Job.node == row.node,
                    Job.state.in_([str(s) for s in IN_FLIGHT])).values(
                    state=str(JobState.QUEUED), node=None, claim_no=Job.claim_no + 1,
                    next_attempt_at=now, attempts=Job.attempts - 1, session_id=None,
                    bytes_sent=0, updated_at=now, last_error=takeover_reason(row.node)))
            if rows:
                conn.execute(update(Reservation).where(
                    Reservation.job_id.in_([r.id for r in rows]),
                    Reservation.outcome == "active").values(outcome="abandoned"))
                engine_mod.notify_jobs(conn)
        for dead in sorted({r.node for r in rows}):
            ids = [r.id for r in rows if r.node == dead]
            log.warning("fleet.takeover", node=self.node, dead_node=dead, job_ids=ids)
        return [r.id for r in rows]


class Listener:
    """LISTEN on the jobs channel; call `on_wake` for every notification. Reconnects with
    backoff when the database goes away (and wakes once then: notices may have been missed)."""

    def __init__(self, engine: Any, on_wake: Callable[[], None],
                 channel: str = engine_mod.JOBS_CHANNEL):
        self.engine, self.on_wake, self.channel = engine, on_wake, channel
        self._stop = threading.Event()
        self._rsock, self._wsock = socket.socketpair()  # interrupts select() at stop
        self.connected = threading.Event()
        self.thread = threading.Thread(target=self._run, name="fleet-listen", daemon=True)

    def start(self) -> Listener:
        self.thread.start()
        return self

    def alive(self) -> bool:
        return self.thread.is_alive()

    def close(self, timeout: float = 5.0) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._wsock.send(b"\0")
        self.thread.join(timeout)
        self._rsock.close()
        self._wsock.close()

    def _run(self) -> None:
        delay, first = LISTEN_BACKOFF[0], True
        while not self._stop.is_set():
            conn = None
            try:
                conn = engine_mod.listen_connection(self.engine, self.channel)
                self.connected.set()
                if not first:
                    log.info("fleet.listening_again")
                    self.on_wake()  # whatever was queued while we were away
                first, delay = False, LISTEN_BACKOFF[0]
                self._listen(conn)
            except Exception as exc:  # the database went away, or refused us: retry
                if not self._stop.is_set():
                    log.warning("fleet.listen_failed", reason=str(exc)[:200], retry_in=delay)
            finally:
                self.connected.clear()
                if conn is not None:
                    with contextlib.suppress(Exception):
                        conn.close()
            if self._stop.wait(delay):
                return
            delay = min(LISTEN_BACKOFF[1], delay * 2)

    def _listen(self, conn: Any) -> None:
        fd = conn.fileno()
        while not self._stop.is_set():
            ready, _, _ = select.select([fd, self._rsock], [], [])  # no timeout: idle is idle
            if self._rsock in ready:
                return
            # Readable: notifications, or EOF when the server went away (notifies() raises).
            got = list(conn.notifies(timeout=0))
            if not got and conn.closed:
                raise ConnectionError("the listening connection closed")
            if got:
                self.on_wake()


# ---- wiring, for the service and the pipeline -------------------------------------------------

def watch_roots(watches: Iterable[Any]) -> dict[str, str]:
    """Watch identity (a shared root's name, else its path) -> this node's root path."""
    return {(w.name if w.shared else str(w.path)): str(w.path) for w in watches}


def shared_names(watches: Iterable[Any]) -> list[str]:
    return [w.name for w in watches if w.shared and w.name]


class Parts:
    """The fleet pieces one node runs; closed by the service at stop."""

    def __init__(self, fleet: Fleet, listener: Listener | None = None):
        self.fleet, self.listener = fleet, listener

    def close(self) -> None:
        if self.listener is not None:
            self.listener.close()


def join(cfg: Any, store: Store) -> Parts | None:
    """Right after the store opens, before recovery: tell it who we are; in a fleet, beat
    once so others see us before we claim anything."""
    store.set_node(cfg.node.name, shared_names(cfg.watches))
    if not store.fleet:
        return None
    parts = Parts(Fleet(store, cfg.node.name, cfg.node.lease_seconds))
    parts.fleet.beat()
    return parts


def start(parts: Parts | None, scheduler: Any, wake: Callable[[], None]) -> None:
    """Once the worker runs: heartbeats every lease/3 and the LISTEN thread."""
    if parts is None:
        return
    fleet = parts.fleet

    def beat() -> None:
        if fleet.beat():
            wake()

    scheduler.add_job(beat, "interval", seconds=fleet.lease / 3, id="fleet-beat")
    parts.listener = Listener(fleet.store.engine, wake).start()


def localize(job: Job, watches: Iterable[Any]) -> Job:
    """A shared root's job as this node sees it: its path under this node's mount of the
    share and, if the file is the queued version (size, mtime within the 2 s that SMB/FAT
    keep), the exact mtime this node reads, so the pipeline's own checks hold unchanged."""
    for w in watches:
        if w.shared and w.name == job.watch:
            local = os.path.join(str(w.path), paths.from_db(job.rel_path))
            job.path, job.root = local, str(w.path)
            try:
                st = os.stat(local)
            except OSError:
                return job  # the pipeline's own stat reports it
            if st.st_size == job.size and abs(coarse(st.st_mtime_ns) - job.mtime_ns) <= \
                    2_000_000_000:
                job.mtime_ns = st.st_mtime_ns
            return job
    return job




def share(root: Any) -> str | None:
    """The shared name of a watch root (its jobs are the fleet's), else None (node-local)."""
    return root.name if root.shared else None


def roots_for(store: Store, watches: Iterable[Any]) -> dict[str, str] | None:
    """For the intake's path lists: this node's paths of fleet jobs; None on SQLite (as is)."""
    return watch_roots(watches) if store.fleet else None
