"""A database connection that drops right after a commit reached the server: the commit is done,
its answer is lost, and the driver raises OperationalError (as psycopg does when the server or
the network goes away between COMMIT and its reply, or SQLite on an I/O error at that moment).

`drop_after_commit(engine, match)` arms it on one SQLAlchemy engine: the first transaction that
ran a statement `match` accepts commits, then raises the dialect's own OperationalError, once.
For a daemon subprocess, `sitecustomize_dir(tmp)` gives a PYTHONPATH entry that arms it on every
engine the daemon makes when UPLIFT_TEST_DROP_AFTER_DONE is set (a `done` write).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event


class CommitDrop:
    """Counts what it did, for the test to assert on."""

    def __init__(self, times: int = 1):
        self.left = times
        self.dropped = 0
        self._armed: set[int] = set()  # id() of DBAPI connections whose next commit drops
        self._lock = threading.Lock()

    def arm(self, dbapi_conn: Any) -> None:
        with self._lock:
            if self.left > 0:
                self.left -= 1
                self._armed.add(_raw(dbapi_conn))

    def disarm(self, dbapi_conn: Any) -> None:
        with self._lock:
            self._armed.discard(_raw(dbapi_conn))

    def take(self, dbapi_conn: Any) -> bool:
        with self._lock:
            if _raw(dbapi_conn) in self._armed:
                self._armed.discard(_raw(dbapi_conn))
                self.dropped += 1
                return True
            return False


def _raw(conn: Any) -> int:
    """The driver's own connection (SQLAlchemy hands over its pool's proxy of it)."""
    return id(getattr(conn, "dbapi_connection", conn))


def drop_after_commit(engine: Engine, match: Callable[[str, Any], bool], times: int = 1,
                      drop: CommitDrop | None = None) -> CommitDrop:
    """`drop`: one shared by several engines (its count is for all of them)."""
    drop = drop if drop is not None else CommitDrop(times)
    dialect = engine.dialect
    real_commit = dialect.do_commit

    @event.listens_for(engine, "after_cursor_execute")
    def _seen(conn: Any, cursor: Any, statement: str, params: Any, context: Any,
              executemany: bool) -> None:
        if match(statement, params):
            drop.arm(conn.connection)

    @event.listens_for(engine, "rollback")
    def _rolled_back(conn: Any) -> None:  # nothing committed: nothing to drop
        drop.disarm(conn.connection)

    def do_commit(dbapi_conn: Any) -> None:
        real_commit(dbapi_conn)  # it reached the database...
        if drop.take(dbapi_conn):  # ...and the answer is lost
            raise dialect.loaded_dbapi.OperationalError(
                "server closed the connection unexpectedly (test: after the commit)")

    dialect.do_commit = do_commit  # type: ignore[method-assign]
    return drop


def is_done_write(statement: str, params: Any) -> bool:
    """The UPDATE that moves a job to `done` (Store.finish)."""
    values = params.values() if isinstance(params, dict) else (params or ())
    return statement.lstrip().upper().startswith("UPDATE JOBS") and "done" in list(values)


SITECUSTOMIZE = '''\
"""Test-only (tests/dbfaults.py): the first `done` commit of this process drops its answer."""
import os
if os.environ.get("UPLIFT_TEST_DROP_AFTER_DONE"):
    import dbfaults
    from daemon.jobs import engine as _engine_mod
    _make = _engine_mod.make_engine
    _drop = dbfaults.CommitDrop(times=1)  # once per process, whichever engine writes `done`

    def make_engine(*args, **kwargs):
        eng = _make(*args, **kwargs)
        dbfaults.drop_after_commit(eng, dbfaults.is_done_write, drop=_drop)
        return eng

    _engine_mod.make_engine = make_engine
'''


def sitecustomize_dir(tmp: Path) -> Path:
    """A folder to put first on a subprocess's PYTHONPATH (with tests/ after it)."""
    folder = tmp / "faultsite"
    folder.mkdir(exist_ok=True)
    (folder / "sitecustomize.py").write_text(SITECUSTOMIZE)
    return folder
