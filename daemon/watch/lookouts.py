"""The lookouts: every look at a watch root's file system that the service asks for (is it
there, is its observer running, a walk of its tree) runs on that root's own thread, never on
the thread that asked.

A hard-mounted network share whose server stops answering hangs every call on it, for good,
and Python cannot stop a thread blocked in the kernel. Were the health tick, a reload or the
recovery after a database outage to stat or walk such a root themselves, the main thread would
hang with it: no tick (the watchdog kills the service), no SIGTERM. Here one root that hangs
holds only its own lookout: the others are looked at and their files go on.

Each lookout owns one daemon thread and a set of asked tasks (LOOK, then SCAN), all behind the
set's one condition. A task asked while the same one waits is not added twice, and nothing
new starts on a root while its thread is inside a call: a hung root piles up nothing. A
thread that has made no progress for `limit` seconds is "not answering" (`stuck`), which the
owner shows; it answers again when its call returns. A thread that died is started afresh
(`revive`). Stopping does not wait for a thread stuck in the kernel (a daemon thread).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from daemon import logs
from daemon.config import WatchRoot

log = logs.get("watcher")
LOOK, SCAN = "look", "scan"
TASKS = (LOOK, SCAN)  # in this order: a root is watched before it is walked
NOT_ANSWERING_AFTER = 10.0  # seconds without progress before a root counts as not answering

# root, task, beat: `beat()` says the task is moving (a walk calls it at each folder)
Run = Callable[[WatchRoot, str, Callable[[], None]], None]


@dataclass
class _Lookout:
    root: WatchRoot
    thread: threading.Thread | None = None
    asked: set[str] = field(default_factory=set)
    busy: tuple[str, float] | None = None  # the task it is inside, and its last progress
    started: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TASKS, 0))
    finished: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TASKS, 0))
    retired: bool = False  # no longer a watch root: its thread ends after its task


class Lookouts:
    def __init__(self, run: Run, roots: Iterable[WatchRoot],
                 clock: Callable[[], float] = time.monotonic):
        self._run, self.clock = run, clock
        self._cond = threading.Condition()
        self._by_path: dict[str, _Lookout] = {}
        self._stopped = False
        self.set_roots(roots)

    def set_roots(self, roots: Iterable[WatchRoot]) -> None:
        """The watch roots now (a reload): new ones get a lookout, removed ones are retired."""
        with self._cond:
            wanted = {str(r.path): r for r in roots}
            for path, lo in list(self._by_path.items()):
                if path not in wanted:
                    lo.retired = True
                    del self._by_path[path]
            for path, root in wanted.items():
                lo = self._by_path.setdefault(path, _Lookout(root))
                lo.root = root
            self._cond.notify_all()

    def ask(self, task: str, paths: Iterable[str] | None = None,
            wait: float | None = 0.0) -> bool:
        """Ask for `task` on these roots (all by default). `wait`: seconds to wait for it to
        be done on each (None: however long); True when it was done everywhere in time."""
        with self._cond:
            if self._stopped:
                return False
            chosen = [lo for p, lo in self._by_path.items() if paths is None or p in paths]
            targets = []
            for lo in chosen:
                lo.asked.add(task)
                targets.append((lo, lo.started[task] + 1))  # the next run of it counts
                self._ensure(lo)
            self._cond.notify_all()
            deadline = None if wait is None else self.clock() + wait

            def done() -> bool:
                return all(lo.finished[task] >= n or lo.retired for lo, n in targets)

            while not done() and not self._stopped:
                left = None if deadline is None else deadline - self.clock()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)
            return done()

    def stuck(self, limit: float = NOT_ANSWERING_AFTER) -> dict[str, tuple[WatchRoot, float]]:
        """Roots whose thread has made no progress for `limit` seconds: path -> (root, how
        long)."""
        now = self.clock()
        with self._cond:
            return {p: (lo.root, now - lo.busy[1]) for p, lo in self._by_path.items()
                    if lo.busy is not None and now - lo.busy[1] >= limit}

    def revive(self) -> list[str]:
        """Start afresh the threads that died (an error that escaped); their roots' paths."""
        died = []
        with self._cond:
            for path, lo in self._by_path.items():
                if lo.thread is not None and not lo.thread.is_alive():
                    died.append(path)
                    lo.thread, lo.busy = None, None
                    self._ensure(lo)
        for path in died:
            log.error("watch.lookout_died", root=path)
        return died

    def stop(self, timeout: float = 1.0) -> None:
        """Threads end after their task; one stuck in the kernel is left (a daemon thread)."""
        with self._cond:
            self._stopped = True
            threads = [lo.thread for lo in self._by_path.values() if lo.thread is not None]
            self._cond.notify_all()
        deadline = self.clock() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - self.clock()))

    def _ensure(self, lo: _Lookout) -> None:
        """Under the condition: the lookout has its thread."""
        if lo.thread is None:
            lo.thread = threading.Thread(target=self._loop, args=(lo,),
                                         name=f"lookout {lo.root.path}", daemon=True)
            lo.thread.start()

    def _next(self, lo: _Lookout) -> str | None:
        with self._cond:
            while not (self._stopped or lo.retired) and not lo.asked:
                self._cond.wait()
            if self._stopped or lo.retired:
                return None
            task = next(t for t in TASKS if t in lo.asked)
            lo.asked.discard(task)
            lo.started[task] += 1
            lo.busy = (task, self.clock())
            return task

    def _beat(self, lo: _Lookout) -> Callable[[], None]:
        def beat() -> None:
            with self._cond:
                if lo.busy is not None:
                    lo.busy = (lo.busy[0], self.clock())
        return beat

    def _loop(self, lo: _Lookout) -> None:
        beat = self._beat(lo)
        while (task := self._next(lo)) is not None:
            try:
                self._run(lo.root, task, beat)
            except Exception:  # one failed look must not end this root's lookout
                log.exception("watch.lookout_error", root=str(lo.root.path), task=task)
            finally:
                with self._cond:
                    lo.busy = None
                    lo.finished[task] += 1
                    self._cond.notify_all()
