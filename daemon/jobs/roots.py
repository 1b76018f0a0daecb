"""The watch roots' identities in the job table, and the writes that follow a root that is not
there (an unmounted share, a pulled disk): its waiting jobs wait, they are not taken for gone.

A root's identity (st_dev, st_ino) is keyed by (node, watch): `watch` as in Job.watch (a shared
root's name, else the root's path); `node` this node's name in a fleet (each node has its own
mount of a share), "" on SQLite. The decision itself is in watch/roots.py; this module only
reads and writes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from daemon.jobs import engine as engine_mod
from daemon.jobs import paths
from daemon.jobs.models import ACTIVE, Job, JobState, RootIdentity
from daemon.jobs.store import Store

Identity = tuple[int, int]  # (st_dev, st_ino)

SAMPLE = 20  # waiting files looked for under a root whose identity changed


def absent_reason(root: str) -> str:
    """Why a job under a root that is not there waits (status, the job's last_error)."""
    return f"the folder {root} is not there (unmounted?)"


@dataclass(frozen=True)
class Waiting:
    """A waiting job's file below its root: enough to find it under a moved root."""

    rel_path: str
    size: int


class RootTable:
    """Reads and writes of `watch_roots`, and of the jobs waiting under a root."""

    def __init__(self, store: Store):
        self.store = store

    @property
    def node(self) -> str:
        return self.store.owner  # this node's name in a fleet, "" on SQLite

    def _mine(self, watch: str) -> list[Any]:
        return [Job.watch == watch, Job.owner.in_(("", self.store.owner))]

    def recorded(self, watch: str) -> Identity | None:
        with self.store._read() as conn:
            row = conn.execute(select(RootIdentity.dev, RootIdentity.ino).where(
                RootIdentity.node == self.node, RootIdentity.watch == watch)).first()
        return None if row is None else (int(row.dev), int(row.ino))

    def record(self, watch: str, path: str, identity: Identity, now: float,
               replace: bool = True, accepted: bool = False) -> None:
        """This node's identity of the root; `replace=False` keeps one already recorded.
        `accepted` (by a person): running nodes are told, at commit, to read it afresh."""
        values = {"node": self.node, "watch": watch, "path": path, "dev": identity[0],
                  "ino": identity[1], "recorded_at": now}
        with self.store.guard.write() as conn:
            ins = engine_mod.insert_for(conn)(RootIdentity).values(**values)
            keys = [RootIdentity.node, RootIdentity.watch]
            conn.execute(ins.on_conflict_do_update(
                index_elements=keys, set_={k: values[k] for k in ("path", "dev", "ino",
                                                                   "recorded_at")})
                         if replace else ins.on_conflict_do_nothing(index_elements=keys))
            if accepted:
                engine_mod.notify_roots(conn)

    def waiting(self, watch: str, limit: int = SAMPLE) -> list[Waiting]:
        """Jobs under the root that still wait for their file (pending to uploading)."""
        with self.store._read() as conn:
            rows = conn.execute(select(Job.rel_path, Job.size).where(
                *self._mine(watch), Job.state.in_([str(s) for s in ACTIVE]))
                .order_by(Job.id).limit(limit))
            return [Waiting(paths.from_db(r.rel_path), int(r.size)) for r in rows]

    def any_job(self, watch: str) -> bool:
        """Has this node any job under the root, in any state?"""
        with self.store._read() as conn:
            return conn.execute(select(Job.id).where(*self._mine(watch)).limit(1)).first() \
                is not None

    def hold_queued(self, watch: str, reason: str, now: float) -> list[int]:
        """A node-local root not there: its queued jobs go back to pending with the reason
        (settled again once it is back)."""
        with self.store.guard.write() as conn:
            ids = list(conn.execute(select(Job.id).where(
                Job.watch == watch, Job.owner == self.store.owner,
                Job.state == JobState.QUEUED)).scalars())
            for job_id in ids:
                self.store.guard.move(conn, job_id, [JobState.QUEUED], JobState.PENDING, now,
                                      last_error=reason)
            return ids


def identity_of(path: str) -> Identity | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


__all__ = ["Identity", "RootTable", "Waiting", "absent_reason", "identity_of"]
