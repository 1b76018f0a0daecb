"""The job-table writes around an upload that need not hold up its slot, each kind on one lane
(a thread owned here, working through its queue in order).

Between one upload's answer and the next request, a slot used to write `done` (durable), run the
after-upload action, log, then write `uploading` for its next job: 5-15 ms in which its
connection sent nothing. On a busy link the other slot covers that only when their uploads happen
to be out of step (bench: about 0.5 s of an idle 1 Gbit/s link in 500 files of 5 MiB). Now the
slot hands those over and starts its next request at once:

- `starts`: the `uploading` write. The slot waits for it before the closing boundary (the point
  at which the endpoint would complete the upload), so no upload completes that the job table
  does not show as uploading under this node's claim.
- `finishes`: `done`, durable, retried while the job table cannot be written. Submitted once the
  upload's `uploading` is in, so the two never cross.
- `afters`: the after-upload action (a move may copy a whole file to another disk), once `done`
  is written; it holds up neither uploads nor other `done` writes.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from daemon import logs

log = logs.get("worker")
_STOP = object()


IDLE_EXIT = 30.0  # seconds: a lane with nothing to do for this long ends its thread


class Lane:
    """One daemon thread running submitted calls in order. A call's exception lands in its
    Future, so nothing ends the thread but `stop` or idleness; being a daemon thread, a call
    that hangs (a job table that never answers) cannot keep the process from exiting. The
    thread starts with the first call and ends after `idle_exit` seconds without one: an idle
    station keeps no thread for uploads it is not doing."""

    def __init__(self, name: str, idle_exit: float = IDLE_EXIT):
        self.name, self.idle_exit = name, idle_exit
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._closed = False
        self._pending = 0  # submitted and not finished
        self._idle = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None  # running calls now, if any

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Raises RuntimeError once the lane is stopped."""
        fut: Future[Any] = Future()
        with self._lock:  # the put too: nothing lands behind the stop marker
            if self._closed:
                raise RuntimeError(f"{self.name} is stopped")
            if self._thread is None:  # under the lock the thread decides to end: no call lost
                thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                thread.start()  # fails (no thread to be had): nothing queued, the caller runs it
                self._thread = thread
            self._pending += 1
            self._queue.put((fut, fn, args))
        return fut

    def running(self) -> bool:
        with self._lock:
            return self._thread is not None

    def _run(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=self.idle_exit)
            except queue.Empty:
                with self._lock:
                    if self._queue.empty():
                        self._thread = None
                        return
                continue
            if item is _STOP:
                return
            fut, fn, args = item
            if fut.set_running_or_notify_cancel():
                try:
                    fut.set_result(fn(*args))
                except BaseException as exc:  # into the Future: the lane goes on
                    fut.set_exception(exc)
            with self._lock:
                self._pending -= 1
                if not self._pending:
                    self._idle.notify_all()

    def idle(self) -> bool:
        with self._lock:
            return not self._pending

    def drain(self, deadline: float, force: Callable[[], bool] = lambda: False) -> bool:
        """Until everything submitted ran, the monotonic `deadline` or `force()`."""
        with self._lock:
            while self._pending and time.monotonic() < deadline and not force():
                self._idle.wait(min(0.2, max(0.0, deadline - time.monotonic())))
            return not self._pending

    def stop(self) -> None:
        """No more submissions; the thread ends after what is queued."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(_STOP)


class Recorder:
    """The three lanes; `stopping` ends `done` retries at shutdown."""

    def __init__(self) -> None:
        self.starts = Lane("record-start")
        self.finishes = Lane("record-done")
        self.afters = Lane("after-upload")
        self.stopping = threading.Event()

    @property
    def lanes(self) -> tuple[Lane, ...]:
        return self.starts, self.finishes, self.afters

    @staticmethod
    def logged(fut: Future[Any], what: str, **bound: Any) -> None:
        """Log the failure of a call nobody waits for."""

        def report(done: Future[Any]) -> None:
            exc = done.exception()
            if exc is not None:
                reason = str(getattr(exc, "orig", None) or exc)[:200]
                log.error("worker.record_failed", what=what, error=type(exc).__name__,
                          reason=reason, **bound)

        fut.add_done_callback(report)

    def hand(self, lane: Lane, what: str, fn: Callable[..., Any], *args: Any,
             **bound: Any) -> None:
        """Run `fn(*args)` on `lane`, a failure logged; on this thread once the lane is stopped
        (shutting down: it must happen all the same)."""
        try:
            fut = lane.submit(fn, *args)
        except RuntimeError:
            fn(*args)
            return
        self.logged(fut, what, **bound)

    def stop(self, deadline: float, force: Callable[[], bool] = lambda: False) -> bool:
        """After the slots stopped: let queued writes finish until `deadline` (or `force`);
        then end `done` retries and stop the lanes. False when something was left unfinished."""
        drained = all(lane.drain(deadline, force) for lane in self.lanes)
        # From here a `done` that cannot be written is given up on at once (also one written
        # by a straggling slot itself, the lanes being gone).
        self.stopping.set()
        if not drained:  # a retry sleeping on `stopping` ends now; allow a moment for that
            for lane in self.lanes:
                lane.drain(time.monotonic() + 2.0, force)
        for lane in self.lanes:
            lane.stop()
        return all(lane.idle() for lane in self.lanes)
