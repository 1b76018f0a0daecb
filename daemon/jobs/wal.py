"""The SQLite file's WAL deleted under the running daemon: noticed by the health tick
(service/health.py), and its commits saved into the database file before the restart."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import Engine

from daemon.jobs.engine import sqlite_path, writer_turn


def wal_deleted(url: str) -> Path | None:
    """The SQLite file's WAL when this process holds it open under a name that is gone
    (deleted, or another file renamed over it), else None. Our connections go on in the
    unlinked file; every other opener (`status`, `retry`) makes a new one that the shared
    index does not match: "disk I/O error". SQLite removes a WAL itself only after closing
    it, so an open one without a name is never SQLite's doing. Linux (/proc); elsewhere None."""
    db = sqlite_path(url)
    if db is None:
        return None
    wal = os.path.realpath(db) + "-wal"
    try:
        fds = os.listdir("/proc/self/fd")
    except OSError:
        return None
    for fd in fds:
        try:
            if os.readlink(f"/proc/self/fd/{fd}").removesuffix(" (deleted)") == wal and \
                    os.fstat(int(fd)).st_nlink == 0:
                return Path(wal)
        except OSError:  # closed meanwhile
            continue
    return None


def checkpoint_wal(engine: Engine) -> str | None:
    """Copy every commit in this process's WAL into the database file and empty the WAL
    (PRAGMA wal_checkpoint(TRUNCATE)); a plain reason when that did not complete, else None.
    Outside any transaction, in the writers' turn."""
    try:
        with writer_turn(engine):
            raw = engine.raw_connection()
            try:
                busy = raw.dbapi_connection.execute(  # type: ignore[union-attr]
                    "PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
            finally:
                raw.close()
    except Exception as exc:  # the driver's own errors: reported, the exit goes on
        return str(getattr(exc, "orig", None) or exc)[:200]
    return "another connection held it (busy)" if busy else None
