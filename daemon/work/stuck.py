"""Upload slots stuck on a file that stopped answering (issue 29 item 5): a thread blocked in
the kernel reading a file on a hung share holds its slot until the share answers, maybe
forever, and with every slot so held no other folder uploads either. The supervisor (the
health tick, through Dispatcher.check and Slots.check) declares such a slot lost: its request
is cut (it can never complete), its job goes back to the queue under a new claim (so the
thread left behind writes nothing more: each of its writes is TakenOver, its closing boundary
never goes, as `ready()` writes under its claim first), its send turn is given back, and a
new thread takes the slot. The stale thread stays in the kernel; if it ever returns it ends.

Bound: at most one stale thread per watch folder at a time (MOST_STALE_PER_WATCH). A second
slot stuck on the same hung folder stays stuck until the first stale thread returns: one
slot freed is enough for the other folders to go on, and a share that hangs and recovers
over and over cannot pile up threads (they return when it answers)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from daemon.jobs.models import Job

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
    """What the slots' supervisor needs to find and let go of a stuck slot: `file_since` (a
    thread ident -> since when in a file call), `stall_seconds()`, `not_answering()` (the
    watch folders shown not there or not answering), `cut(ident)` (abort that thread's request
    and give back its send turn), `abandon(job)` (the guarded requeue under a new claim)."""

    file_since: Callable[[int | None], float | None]
    stall_seconds: Callable[[], float]
    not_answering: Callable[[], frozenset[str]]
    cut: Callable[[int], None]
    abandon: Callable[[Job], None]
