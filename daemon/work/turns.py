"""Send turns: `[upload] concurrency` uploads send their bytes at once. An upload takes a turn
before its request and gives it up as soon as its closing boundary is written: what is left is
the endpoint's answer (a round trip, and its time to store the file), and meanwhile the slot's
next upload is already sending on a second thread. Without that, each slot's connection sat
idle for that round trip between two uploads."""

from __future__ import annotations

import threading
from types import TracebackType

from daemon.net.upload import Aborted

WAIT_STEP = 0.2  # seconds between looks at the abort event while waiting for a turn


class Turns:
    def __init__(self, count: int):
        self._sem = threading.Semaphore(count)

    def turn(self, abort: threading.Event) -> Turn:
        """A turn to take (`with`, or `take()`), given back at the end of the block at the
        latest."""
        return Turn(self._sem, abort)


class Turn:
    """One upload's claim on a send turn; `give` and `take` may repeat (a re-reservation after
    a lapse sends again)."""

    def __init__(self, sem: threading.Semaphore, abort: threading.Event):
        self._sem, self._abort = sem, abort
        self._held = False
        self._lock = threading.Lock()  # `give` runs on the uploading thread, as `take` does

    def take(self) -> None:
        """Wait for a turn; Aborted when the daemon stops or is paused with --now meanwhile."""
        if self._held:
            return
        while not self._sem.acquire(timeout=WAIT_STEP):
            if self._abort.is_set():
                raise Aborted()
        with self._lock:
            self._held = True

    def give(self) -> None:
        with self._lock:
            if not self._held:
                return
            self._held = False
        self._sem.release()

    def __enter__(self) -> Turn:
        self.take()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.give()
