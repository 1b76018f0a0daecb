"""The SQLite file's WAL deleted under the running daemon: noticed by the health tick
(service/health.py), and its commits saved into the database file before the restart."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import Engine

from daemon.jobs.engine import sqlite_path, writer_turn


class OpenWal:
    """The SQLite file's WAL when this process holds it open under a name that is gone
    (deleted, or another file renamed over it), else None. Our connections go on in the
    unlinked file; every other opener (`status`, `retry`) makes a new one that the shared
    index does not match: "disk I/O error". SQLite removes a WAL itself only after closing
    it, so an open one without a name is never SQLite's doing. Linux (/proc); elsewhere None.
    Asked every health tick: the descriptor found is kept, so a tick costs one fstat, not a
    walk of /proc/self/fd (idle CPU)."""

    def __init__(self, url: str):
        db = sqlite_path(url)
        self.wal = None if db is None else Path(os.path.realpath(db) + "-wal")
        self._fd: int | None = None
        self._id: tuple[int, int] | None = None  # (st_dev, st_ino) of the file behind _fd

    def deleted(self) -> Path | None:
        if self.wal is None:
            return None
        if self._fd is not None:
            try:
                st = os.fstat(self._fd)
                if (st.st_dev, st.st_ino) == self._id:
                    return self.wal if st.st_nlink == 0 else None
            except OSError:  # closed: SQLite opened it anew, look for it again
                pass
        self._fd = self._id = None
        try:
            fds = os.listdir("/proc/self/fd")
        except OSError:
            return None
        for fd in fds:
            try:
                if os.readlink(f"/proc/self/fd/{fd}").removesuffix(" (deleted)") != \
                        str(self.wal):
                    continue
                st = os.fstat(int(fd))
            except OSError:  # closed meanwhile
                continue
            self._fd, self._id = int(fd), (st.st_dev, st.st_ino)
            return self.wal if st.st_nlink == 0 else None
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
