"""A look at a path that may hang (a hard-mounted network share whose server stopped
answering): made on a thread of its own and waited for a bounded time. Used where a command
or a reload only wants to know what a watch folder is, and must answer even when it hangs.

The thread cannot be stopped while the kernel holds it; it is a daemon thread, and while it is
still inside a path no second one is started on that path (the answer is "not answering" at
once), so a hung path piles up nothing."""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Callable
from enum import StrEnum
from typing import TypeVar

T = TypeVar("T")

WAIT = 2.0  # seconds a folder gets to answer


class Kind(StrEnum):
    FOLDER = "folder"
    MISSING = "missing"
    OTHER = "other"  # there, but not a folder
    NOT_ANSWERING = "not answering"


_lock = threading.Lock()
# (what, path) -> the thread still inside that call on the path
_inside: dict[tuple[str, str], threading.Thread] = {}


def bounded(what: str, path: str, call: Callable[[str], T], wait: float = WAIT) -> T | None:
    """`call(path)` on a thread of its own; None when it did not return within `wait` (or
    the last such call on the path has not returned yet)."""
    answer: list[T] = []
    with _lock:
        left = _inside.get((what, path))
        if left is not None and left.is_alive():
            return None
        thread = _inside[(what, path)] = threading.Thread(
            target=lambda: answer.append(call(path)), name=f"{what} {path}", daemon=True)
        thread.start()
    thread.join(wait)
    return answer[0] if answer else None


def _kind(path: str) -> Kind:
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return Kind.MISSING
    return Kind.FOLDER if stat.S_ISDIR(mode) else Kind.OTHER


def kind(path: str, wait: float = WAIT) -> Kind:
    """What is at `path`, or NOT_ANSWERING when a stat of it did not return within `wait`."""
    return bounded("stat", path, _kind, wait) or Kind.NOT_ANSWERING


def _space(path: str) -> os.statvfs_result | OSError:
    try:
        return os.statvfs(path)
    except OSError as exc:
        return exc


def space(path: str, wait: float = WAIT) -> os.statvfs_result | OSError | None:
    """statvfs of `path`'s file system; the OSError when it failed; None when not answering."""
    return bounded("statvfs", path, _space, wait)
