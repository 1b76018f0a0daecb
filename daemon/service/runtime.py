"""The daemon's live conditions, for `status` in another process even when the job table cannot
be written (disk full): a small file beside the database, allocated once at start and then
rewritten in place, so updating it needs no new disk blocks."""

from __future__ import annotations

import contextlib
import json
import os
import threading
from pathlib import Path
from typing import Any

SIZE = 8192


def state_path(db_file: Path | None) -> Path | None:
    """Beside the SQLite file, where `status` in another process finds it. A server database
    (PostgreSQL) has none: its nodes report through the table."""
    return None if db_file is None else db_file.with_name(db_file.name + ".state")


class StateFile:
    def __init__(self, path: Path | None):
        self.path = path
        self._lock = threading.Lock()
        self._fd: int | None = None
        if path is not None:
            with contextlib.suppress(OSError):
                self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
                os.posix_fallocate(self._fd, 0, SIZE)

    def write(self, state: dict[str, Any]) -> None:
        if self._fd is None:
            return
        data = json.dumps(state).encode()[:SIZE - 1]
        with self._lock, contextlib.suppress(OSError):
            os.pwrite(self._fd, data.ljust(SIZE, b" "), 0)

    def close(self, remove: bool = True) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
            if remove and self.path is not None:
                with contextlib.suppress(OSError):
                    self.path.unlink()


def read(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        found: dict[str, Any] = json.loads(path.read_bytes().strip() or b"{}")
        return found
    except (OSError, ValueError):
        return {}
