"""Send turns: `[upload] concurrency` uploads send their bytes at once. An upload takes a turn
before its request and gives it up as soon as its closing boundary is written: what is left is
the endpoint's answer (a round trip, and its time to store the file), and meanwhile the slot's
next upload is already sending on a second thread. Without that, each slot's connection sat
idle for that round trip between two uploads."""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import TracebackType
from typing import Protocol

from daemon.net.upload import Aborted

WAIT_STEP = 0.2  # seconds between looks at the abort event while waiting for a turn


class Fence(Protocol):
    """Fleet mode's fence (jobs/fleet.py): the epoch an upload starts in, and whether an upload
    of that epoch may still reach its closing boundary."""

    @property
    def epoch(self) -> int: ...

    def live(self, epoch: int) -> bool: ...


class Turns:
    """`may_start()` says whether a new upload may start now (the daemon is not stopping, no
    pause, inside upload hours): a job waiting for a turn when that ends goes back to the
    queue instead of starting."""

    def __init__(self, count: int, may_start: Callable[[], bool] = lambda: True,
                 on_waiting: Callable[[], None] = lambda: None, fence: Fence | None = None):
        self._sem = threading.Semaphore(count)
        self.may_start = may_start
        self.on_waiting = on_waiting  # `waiting()` went down: reserve-ahead may have room
        self._lock = threading.Lock()
        self._waiting = 0
        self._fence = fence
        self._held: dict[int, Turn] = {}  # thread ident -> the turn it holds

    def epoch(self) -> int:
        return 0 if self._fence is None else self._fence.epoch

    def live(self, epoch: int) -> bool:
        return self._fence is None or self._fence.live(epoch)

    def turn(self, abort: threading.Event) -> Turn:
        """A turn to take (`with`, or `take()`), given back at the end of the block at the
        latest."""
        return Turn(self, abort)

    def waiting(self) -> int:
        """Jobs held by threads waiting for a turn (reserve-ahead counts them as held ahead)."""
        with self._lock:
            return self._waiting

    def forfeit(self, ident: int) -> None:
        """The turn that thread holds is given back (its slot was declared lost:
        work/stuck.py); when the thread returns, its own `give` finds nothing to give."""
        with self._lock:
            turn = self._held.get(ident)
        if turn is not None:
            turn.give()

    def _hold(self, turn: Turn, ident: int | None) -> None:
        with self._lock:
            if ident is None:
                self._held = {k: v for k, v in self._held.items() if v is not turn}
            else:
                self._held[ident] = turn

    def _acquire(self, abort: threading.Event) -> None:
        with self._lock:
            self._waiting += 1
        try:
            while True:
                self._check(abort)
                if self._sem.acquire(timeout=WAIT_STEP):
                    break
        finally:
            with self._lock:
                self._waiting -= 1
            self.on_waiting()
        try:
            self._check(abort)  # it may have changed while this thread waited
        except Aborted:
            self._sem.release()
            raise

    def _check(self, abort: threading.Event) -> None:
        if abort.is_set() or not self.may_start():
            raise Aborted()

    def _release(self) -> None:
        self._sem.release()


class Turn:
    """One upload's claim on a send turn; `give` and `take` may repeat (a re-reservation after
    a lapse sends again)."""

    def __init__(self, turns: Turns, abort: threading.Event):
        self._turns, self._abort = turns, abort
        self._held = False
        self._lock = threading.Lock()
        self._epoch = turns.epoch()

    def take(self) -> None:
        """Wait for a turn; Aborted (the job goes back to the queue, the attempt not counted)
        when the daemon stops, pauses or leaves upload hours meanwhile."""
        with self._lock:
            if self._held:
                return
        self._turns._acquire(self._abort)
        with self._lock:
            self._held = True
            self._epoch = self._turns.epoch()
        self._turns._hold(self, threading.get_ident())

    def check(self) -> None:
        """Just before the closing boundary: Aborted (back to the queue; another node may hold
        the job by now) when this node was fenced since its turn began."""
        if not self._turns.live(self._epoch):
            raise Aborted()

    def give(self) -> None:
        with self._lock:
            if not self._held:
                return
            self._held = False
        self._turns._hold(self, None)
        self._turns._release()

    def __enter__(self) -> Turn:
        self.take()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.give()
