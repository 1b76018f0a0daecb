"""Service-wide conditions a person must see (watch folder lost, job table unwritable), kept in
memory behind one lock and published twice: as notices in the job table (for `status` and the
console), and in the runtime state file, which still works when the table cannot be written."""

from __future__ import annotations

import os
import resource
import threading
import time
from collections.abc import Callable

from sqlalchemy.exc import OperationalError

from daemon import logs
from daemon.errors import is_station_fault, station_reason
from daemon.jobs.store import Store
from daemon.service.runtime import StateFile

log = logs.get("service")
OPEN_FILES = "open_files"


def descriptors_to_spare() -> bool:
    try:
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        used = len(os.listdir("/proc/self/fd"))
    except OSError:  # no /proc: say so only when a file can be opened again
        return True
    return soft == resource.RLIM_INFINITY or used < soft * 0.9


def db_reason(exc: Exception) -> str:
    text = str(getattr(exc, "orig", None) or exc)
    if "full" in text.lower():
        return "cannot write the job database: disk full"
    return f"cannot write the job database: {text[:160]}"


class Attention:
    def __init__(self, store: Store, state: StateFile,
                 on_change: Callable[[str, str | None], None] = lambda n, m: None,
                 wall: Callable[[], float] = time.time):
        self.store, self.state, self.on_change, self.wall = store, state, on_change, wall
        self._lock = threading.Lock()
        self._now: dict[str, str] = {}
        self._lost_roots: dict[str, str] = {}
        self._unsynced: set[str] = set()

    def conditions(self) -> dict[str, str]:
        with self._lock:
            return dict(self._now)

    def _set(self, name: str, message: str | None) -> None:
        with self._lock:
            if self._now.get(name) == message:
                return
            if message is None:
                self._now.pop(name, None)
            else:
                self._now[name] = message
            self._unsynced.add(name)
            snapshot = dict(self._now)
        self.state.write({"pid": os.getpid(), "attention": snapshot})
        (log.warning if message else log.info)(
            "service.attention" if message else "service.attention_cleared", name=name,
            reason=message)
        self.on_change(name, message)
        self.sync()

    def sync(self) -> None:
        """Mirror changed conditions into the job table; kept for later if it cannot be
        written now."""
        with self._lock:
            todo = {n: self._now.get(n) for n in self._unsynced}
        for name, message in todo.items():
            try:
                if message is None:
                    self.store.clear_notice(name)
                else:
                    self.store.set_notice(name, message, None, self.wall())
            except OperationalError:
                return
            with self._lock:
                if self._now.get(name) == message:
                    self._unsynced.discard(name)

    def condition(self, name: str, message: str | None) -> None:
        self._set(name, message)

    def db_error(self, exc: Exception | None) -> None:
        """A write that failed for want of the job table, or of descriptors (the intake's and
        the workers' fault path carries both)."""
        if isinstance(exc, OSError) and is_station_fault(exc):
            self._set(OPEN_FILES, station_reason(exc))
            return
        self._set("database", None if exc is None else db_reason(exc))

    def descriptors_back(self) -> bool:
        """Clears the open-files condition once a tenth of the limit is free again."""
        if OPEN_FILES not in self.conditions() or not descriptors_to_spare():
            return False
        self._set(OPEN_FILES, None)
        return True

    def root(self, root: str, message: str | None) -> None:
        with self._lock:
            if message is None:
                self._lost_roots.pop(root, None)
            else:
                self._lost_roots[root] = message
            combined = "; ".join(self._lost_roots.values()) or None
        self._set("watch_folder", combined)
