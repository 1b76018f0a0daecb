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
from enum import StrEnum

WAIT = 2.0  # seconds a folder gets to answer


class Kind(StrEnum):
    FOLDER = "folder"
    MISSING = "missing"
    OTHER = "other"  # there, but not a folder
    NOT_ANSWERING = "not answering"


_lock = threading.Lock()
_inside: dict[str, threading.Thread] = {}  # path -> the thread still inside a stat of it


def kind(path: str, wait: float = WAIT) -> Kind:
    """What is at `path`, or NOT_ANSWERING when a stat of it did not return within `wait`."""
    answer: list[Kind] = []

    def look() -> None:
        try:
            mode = os.stat(path).st_mode
        except OSError:
            answer.append(Kind.MISSING)
        else:
            answer.append(Kind.FOLDER if stat.S_ISDIR(mode) else Kind.OTHER)

    with _lock:
        left = _inside.get(path)
        if left is not None and left.is_alive():
            return Kind.NOT_ANSWERING
        thread = _inside[path] = threading.Thread(target=look, name=f"stat {path}", daemon=True)
        thread.start()
    thread.join(wait)
    return answer[0] if answer else Kind.NOT_ANSWERING
