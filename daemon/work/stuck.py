"""Threads stuck on a file that stopped answering (issue 29 item 5): an upload slot's (or a
reserve-ahead thread's) thread blocked in the kernel reading or looking at a file on a hung
share holds its place until the share answers, maybe forever, and with every place so held
no other folder uploads either. The supervisor (the health tick, through Dispatcher.check,
Slots.check and Reserver.check) declares such a thread lost: its job goes back to the queue
under a new claim (so the thread left behind writes nothing more: each of its writes is
TakenOver, its closing boundary never goes, as `ready()` writes under its claim first), its
request is cut (it can never complete), its send turn given back, it is marked let go (when
its call returns it ends without another request: net/filecalls.py), and a new thread takes
its place. The stale thread stays in the kernel until the share answers.

Bound: at most one stale thread per watch folder and runnable (slots, reservers) at a time
(MOST_STALE_PER_WATCH). A second thread stuck on the same hung folder stays stuck until the
first stale one returns: one place freed is enough for the other folders to go on, and a
share that hangs and recovers over and over cannot pile up threads (they return when it
answers)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from daemon import logs
from daemon.jobs.models import Job

log = logs.get("worker")

MOST_STALE_PER_WATCH = 1
ABANDONED = ("its folder stopped answering while it was being uploaded; it will be sent again "
             "when the folder answers")


@dataclass(frozen=True)
class SlotFacts:
    slot: int
    watch: str | None  # the watch folder of the job it holds (None: it holds none)
    file_since: float | None  # since when its thread is in a call on that file (None: not)


def lost(slots: Iterable[SlotFacts], now: float, stall_seconds: float,
         not_answering: frozenset[str], stale: Mapping[str, int],
         most: int = MOST_STALE_PER_WATCH) -> list[int]:
    """The slots to declare lost: in a call on their file for `stall_seconds` or more while
    their folder is shown not answering (so the job, put back, is not claimed again until it
    answers), while fewer than `most` threads of that folder are stale (`stale`: alive ones
    per watch)."""
    count = dict(stale)
    chosen = []
    for facts in slots:
        if facts.watch is None or facts.file_since is None or \
                facts.watch not in not_answering or now - facts.file_since < stall_seconds:
            continue
        if count.get(facts.watch, 0) >= most:
            continue
        count[facts.watch] = count.get(facts.watch, 0) + 1
        chosen.append(facts.slot)
    return chosen


@dataclass(frozen=True)
class Stuck:
    """What the supervisor needs to find and let go of a stuck thread: `file_since` (a
    thread ident -> since when in a file call), `stall_seconds()`, `not_answering()` (the
    watch folders shown not there or not answering), `cut(thread)` (abort its request, give
    back its send turn, mark it let go), `abandon(job)` (the guarded requeue, new claim)."""

    file_since: Callable[[int | None], float | None]
    stall_seconds: Callable[[], float]
    not_answering: Callable[[], frozenset[str]]
    cut: Callable[[threading.Thread], None]
    abandon: Callable[[Job], None]


class Stale:
    """One runnable's threads let go and still alive, each with its job's watch folder; `look`
    finds which of its places to let go now (`held`: each place's thread and job)."""

    def __init__(self, stuck: Stuck, clock: Callable[[], float]):
        self.stuck, self.clock = stuck, clock
        self._alive: list[tuple[threading.Thread, str]] = []

    def quiet(self) -> bool:
        """Nothing to look at: no folder shown not answering, no stale thread alive (the
        health tick asks every 5 s; an idle daemon skips the rest)."""
        return not self._alive and not self.stuck.not_answering()

    def look(self, held: list[tuple[threading.Thread | None, Job | None]]) -> list[int]:
        for old, watch in self._alive:
            if not old.is_alive():
                log.info("worker.stale_thread_ended", thread=old.name, watch=watch)
        self._alive = [(t, w) for t, w in self._alive if t.is_alive()]
        facts = [SlotFacts(n, job.watch if job is not None else None,
                           self.stuck.file_since(thread.ident if thread is not None else None))
                 for n, (thread, job) in enumerate(held)]
        stuck = self.stuck
        return [n for n in lost(facts, self.clock(), stuck.stall_seconds(),
                                stuck.not_answering(), Counter(w for _, w in self._alive))
                if held[n][0] is not None and held[n][1] is not None]

    def let_go(self, thread: threading.Thread, job: Job, place: str) -> None:
        """`thread`, no longer its place's (the caller put a new one there), is counted stale;
        its job goes back to the queue under a new claim (guarded), and only then is the
        thread cut off. When that write fails (the thread finished the job after all, or the
        job table failed), the thread keeps its claim: what it writes when it returns stands
        (and a job it never ends is requeued at the next start)."""
        self._alive.append((thread, job.watch))
        try:
            self.stuck.abandon(job)
        except Exception as exc:
            log.warning("worker.abandon_failed", job_id=job.id, reason=str(exc)[:200])
            return
        self.stuck.cut(thread)
        log.warning("upload.abandoned", job_id=job.id, path=job.path, place=place)

    def __len__(self) -> int:
        return len(self._alive)
