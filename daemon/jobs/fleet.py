"""Fleet mode: several daemons (nodes) on one PostgreSQL job table.

- Heartbeats: each node updates its row in `nodes` every lease/3, on a thread and a database
  connection of its own (never the shared pool: uploads holding every pooled connection must
  not fence a healthy node), from before the first claim until the last upload drained; a
  node fences itself when its beats fail or land late (Fleet).
- Takeover: any live node requeues the in-flight jobs of a node silent longer than the lease;
  their claim_no is bumped, so the presumed-dead node's later writes change nothing
  (ClaimGuard.move raises TakenOver). Upload policies are never stored: a takeover reserves
  afresh, after asking Uplift about a job found `uploading` (work/landed.py).
- Wake-ups: one listener thread per node (listen.py).
The lease protocol lives here; the threads that run it (heartbeat, listener) belong to the
service (service/fleet.py), and the mapping of shared watch roots to this node's paths is in
shares.py. On SQLite (one node) none of this runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from sqlalchemy import Engine, and_, case, update
from sqlalchemy import select as sql_select
from sqlalchemy.exc import SQLAlchemyError

from daemon import logs
from daemon.jobs import engine as engine_mod
from daemon.jobs.engine import DatabaseUnavailable
from daemon.jobs.models import IN_FLIGHT, Job, JobState, Node, Reservation

log = logs.get("fleet")


def takeover_reason(node: str) -> str:
    return f"station {node} stopped answering; another station takes over"


def waiting_reason(node: str) -> str:
    return f"waits for station {node}, which is not running"


class Holder(Protocol):
    """What the protocol needs of the job store (store.Store): its engine."""
    engine: Engine


class NameTaken(DatabaseUnavailable):
    """Another live station holds this node's name (two stations given one `[node] name`)."""


def identity(host: str | None = None) -> dict[str, Any]:
    """Who this process is, beyond its name: host, boot id, pid and a nonce of this start.
    Stored as JSON in nodes.host (no schema change), with `stopped` once it stops cleanly."""
    boot = ""
    with contextlib.suppress(OSError):
        boot = open("/proc/sys/kernel/random/boot_id").read().strip()  # noqa: SIM115
    return {"host": host if host is not None else socket.gethostname(), "boot": boot,
            "pid": os.getpid(), "nonce": secrets.token_hex(8)}


def parse_identity(text: str | None) -> dict[str, Any]:
    """nodes.host as stored: our JSON, or a plain host name (rows of an older version)."""
    try:
        found = json.loads(text or "")
    except ValueError:
        return {"host": text or ""}
    return found if isinstance(found, dict) else {"host": str(found)}


def _gone(other: dict[str, Any], mine: dict[str, Any]) -> bool:
    """The other holder ran on this machine since this boot and its process is gone (a
    restart after a crash): the name is free although its beat is recent."""
    if not other.get("boot") or (other.get("host"), other.get("boot")) != (mine["host"],
                                                                          mine["boot"]):
        return False
    try:
        os.kill(int(other.get("pid") or 0), 0)
    except ProcessLookupError:
        return True
    except (OSError, ValueError):
        return False
    return False


def where(ident: dict[str, Any]) -> str:
    return f"{ident.get('host') or 'an unknown host'} (pid {ident.get('pid', '?')})"


class Fleet:
    """This node's heartbeat, its fence, and the takeover of dead nodes' in-flight jobs.
    `clock`: epoch seconds; None = the database's clock (nodes' own clocks may disagree).

    Fence: a node whose last successful beat (started at `monotonic` time `_last_ok`) is older
    than two thirds of the lease starts no upload and lets none reach its closing boundary;
    others take over only after a full lease on the database's clock. A beat that completes
    while fenced (its completion more than two thirds of a lease after the previous success's
    start: a gap, or a beat that was slow to land) bumps `epoch`, so uploads begun before it
    are abandoned as well. Every write here goes through `engine`, one connection of its own."""

    def __init__(self, store: Holder, node: str, lease_seconds: float,
                 clock: Callable[[], float] | None = None, host: str | None = None,
                 monotonic: Callable[[], float] = time.monotonic,
                 local: Callable[[], float] = time.time):
        self.store, self.node, self.lease = store, node, lease_seconds
        self.engine = engine_mod.own_engine(store.engine)
        self.clock, self.monotonic, self.local = clock, monotonic, local
        self.ident = identity(host)
        self.host = self.ident["host"]
        self._ident_text = json.dumps(self.ident, sort_keys=True)
        self.started_at: float | None = None
        self.offset = 0.0  # database clock - local clock, measured at each beat
        self.lost: str | None = None  # set when another station took our name
        # Since when our beats have succeeded without a gap. Takeover waits a full lease after
        # any gap: when the database itself was away, every node's beat is old, none is dead.
        self._ok_since: float | None = None
        self._lock = threading.Lock()
        self._last_ok: float | None = None
        self.epoch = 0

    def _now(self, conn: Any) -> float:
        if self.clock is not None:
            return self.clock()
        before = self.local()
        now = engine_mod.db_now(conn)
        self.offset = now - (before + self.local()) / 2
        return now

    def wall(self) -> float:
        """Epoch seconds by the database's clock (as of the last beat's offset): every due
        time and lease of the fleet is compared on it, whatever this machine's clock says."""
        return self.clock() if self.clock is not None else self.local() + self.offset

    # ---- the fence ---------------------------------------------------------------------------

    def fenced(self) -> bool:
        with self._lock:
            return self._stale()

    def _stale(self) -> bool:
        return self._last_ok is None or \
            self.monotonic() - self._last_ok > self.lease * 2 / 3

    def live(self, epoch: int) -> bool:
        """An upload begun at `epoch` may still complete: no gap in our beats since."""
        with self._lock:
            return not self._stale() and self.epoch == epoch

    def _beat_ok(self, started: float) -> None:
        with self._lock:
            # The completion, not the start: a beat that hung past the fence (and perhaps a
            # takeover) lands with a recent start, yet the node was fenced meanwhile.
            if self._last_ok is None or self.monotonic() - self._last_ok > self.lease * 2 / 3:
                self.epoch += 1  # fenced meanwhile: what began before may have been taken
            self._last_ok = max(started, self._last_ok or started)

    # ---- registering, beating, signing off ----------------------------------------------------

    def register(self) -> None:
        """At start: take our name, unless a live station of another identity holds it
        (NameTaken, in one line naming the name and where it runs)."""
        with engine_mod.write_tx(self.engine) as conn:
            now = self._now(conn)
            row = conn.execute(sql_select(Node.heartbeat_at, Node.host).where(
                Node.name == self.node).with_for_update()).first()
            if row is not None:
                other = parse_identity(row.host)
                if not other.get("stopped") and row.heartbeat_at >= now - self.lease and \
                        other.get("nonce") != self.ident["nonce"] and \
                        not _gone(other, self.ident):
                    raise NameTaken(
                        f"the station name {self.node!r} is in use by a running station on "
                        f"{where(other)}; give this station its own [node] name")
            self.started_at = now
            ins = engine_mod.insert_for(conn)(Node).values(
                name=self.node, heartbeat_at=now, started_at=now, host=self._ident_text)
            conn.execute(ins.on_conflict_do_update(index_elements=[Node.name], set_={
                "heartbeat_at": now, "started_at": now, "host": self._ident_text}))
        self.beat()

    def beat(self) -> list[int]:
        """Record that this node is alive; then take over dead nodes' jobs (ids returned)."""
        started = self.monotonic()
        try:
            with engine_mod.write_tx(self.engine) as conn:
                now = self._now(conn)
                if self.started_at is None:
                    self.started_at = now
                self._upsert(conn, now)
        except NameTaken as exc:
            self.lost = str(exc)
            log.error("fleet.name_taken", node=self.node, reason=self.lost)
            return []
        except SQLAlchemyError as exc:
            if self._ok_since is not None:
                log.warning("fleet.beat_failed", node=self.node,
                            reason=str(getattr(exc, "orig", exc))[:200])
            self._ok_since = None
            return []
        self._beat_ok(started)
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

    def _upsert(self, conn: Any, now: float, text: str | None = None) -> None:
        """Our row, only while it is ours: a row of another identity means another station
        took the name while we were away (NameTaken)."""
        text = text or self._ident_text
        res = conn.execute(update(Node).where(
            Node.name == self.node, Node.host.in_([self._ident_text, text])).values(
            heartbeat_at=now, started_at=self.started_at, host=text))
        if res.rowcount:
            return
        ins = engine_mod.insert_for(conn)(Node).values(
            name=self.node, heartbeat_at=now, started_at=self.started_at, host=text)
        added = conn.execute(ins.on_conflict_do_nothing(index_elements=[Node.name])
                             .returning(Node.name)).first()
        if added is None:
            holder = conn.execute(sql_select(Node.host).where(Node.name == self.node)).scalar()
            raise NameTaken(f"the station name {self.node!r} was taken by a station on "
                            f"{where(parse_identity(holder))}")

    def sign_off(self) -> None:
        """A clean stop: `status` shows this station as stopped, not as NOT RUNNING."""
        stopped = json.dumps({**self.ident, "stopped": True}, sort_keys=True)
        with contextlib.suppress(SQLAlchemyError, NameTaken), \
                engine_mod.write_tx(self.engine) as conn:
            self._upsert(conn, self._now(conn), stopped)

    def close(self) -> None:
        """After sign_off: the heartbeat's own connection."""
        if self.engine is not self.store.engine:
            self.engine.dispose()

    def takeover(self) -> list[int]:
        """Requeue the in-flight jobs of every node whose beat is older than the lease."""
        with engine_mod.write_tx(self.engine) as conn:
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
                    bytes_sent=0, updated_at=now, last_error=takeover_reason(row.node),
                    # One it left `uploading` may have reached the endpoint: ask Uplift first.
                    check_session_id=case(
                        (and_(Job.state == str(JobState.UPLOADING), Job.session_id.is_not(None)),
                         Job.session_id), else_=Job.check_session_id)))
            if rows:
                conn.execute(update(Reservation).where(
                    Reservation.job_id.in_([r.id for r in rows]),
                    Reservation.outcome == "active").values(outcome="abandoned"))
                engine_mod.notify_jobs(conn)
        for dead in sorted({r.node for r in rows}):
            ids = [r.id for r in rows if r.node == dead]
            log.warning("fleet.takeover", node=self.node, dead_node=dead, job_ids=ids)
        return [r.id for r in rows]


def forget(store: Holder, name: str, lease: float) -> str:
    """`nodes forget NAME`: drop a retired station's row (refused while it runs). Jobs that
    wait for it (its own folders) stay, and `status` still names it as their node."""
    from sqlalchemy import delete

    with engine_mod.write_tx(store.engine) as conn:
        row = conn.execute(sql_select(Node.heartbeat_at, Node.host).where(
            Node.name == name).with_for_update()).first()
        if row is None:
            raise DatabaseUnavailable(f"there is no station {name!r} in the job table")
        ident = parse_identity(row.host)
        if not ident.get("stopped") and row.heartbeat_at >= engine_mod.db_now(conn) - lease:
            raise DatabaseUnavailable(f"station {name!r} is running on {where(ident)}; stop "
                                      f"it before forgetting it")
        conn.execute(delete(Node).where(Node.name == name))
    return f"forgot station {name}"
