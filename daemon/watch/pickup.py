"""Instant pickup: may a file go before `settle_seconds`, because its writer closed it? A pure
decision; the intake gathers the facts (watch/intake.py).

On Linux the kernel tells when a writer closes a file (inotify IN_CLOSE_WRITE, watchdog's
FileClosedEvent). A close alone is not enough: a camera app may close a half-written movie and
reopen it to append. So a file goes at once only when its writer closed it *and* its movie is
complete (atoms tile the file, a `moov` is there and every sample it names is in the file,
movie.inspect) *and* it did not change while it was read. Anything else waits: for the next
close, or for settle as before. Nothing fails here: a file that is not a movie is refused by
`classify` once settled, as before (a movie still incomplete then fails with the reason).
Polled folders (SMB/NFS) never see a close (no events cross the network): they keep settle.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import StrEnum

from daemon.watch import movie
from daemon.watch.regular import open_regular


class Movie(StrEnum):
    """What movie.inspect made of the file."""

    COMPLETE = "complete"
    INCOMPLETE = "incomplete"  # NotAMovie: no moov yet, or shorter than its atoms say
    NOT_A_MOVIE = "not_a_movie"  # NotAMovie for another reason (settle, then classify, says why)
    UNREADABLE = "unreadable"  # OSError


@dataclass(frozen=True)
class PickupFacts:
    events: bool  # the watch has change events (poll = false, inotify running)
    closed: bool  # a writer closed the file since the last look
    movie: Movie
    steady: bool  # size and mtime the same before and after the read, and as observed
    why: str = ""  # movie.inspect's reason when it is not complete


@dataclass(frozen=True)
class Now:
    """Queue it without waiting for settle."""


@dataclass(frozen=True)
class Wait:
    reason: str  # for the debug log: why it waits for the next close or settle


def decide(f: PickupFacts) -> Now | Wait:
    if not f.events:
        return Wait("a polled folder: no close events")
    if not f.closed:
        return Wait("not closed by its writer")
    if not f.steady:
        return Wait("it changed while it was read")
    if f.movie is not Movie.COMPLETE:
        return Wait(f.why or f"the movie is {f.movie.value.replace('_', ' ')}")
    return Now()


def movie_state(reason: str | None, unreadable: bool = False) -> Movie:
    """movie.inspect's outcome: None (no error), or the NotAMovie message."""
    if unreadable:
        return Movie.UNREADABLE
    if reason is None:
        return Movie.COMPLETE
    return Movie.INCOMPLETE if "incomplete" in reason else Movie.NOT_A_MOVIE


def look(path: str, version: tuple[int, int], events: bool) -> PickupFacts:
    """The side-effect half: read the movie's atoms (never its media) and stat around it."""
    try:
        with open_regular(path) as f:
            before = os.fstat(f.fileno())
            try:
                movie.read(f, before.st_size)
                why = ""
            except movie.NotAMovie as exc:
                why = str(exc)
            state = movie_state(why or None)
            after = os.fstat(f.fileno())
    except OSError:
        return PickupFacts(events, True, Movie.UNREADABLE, False)
    steady = (before.st_size, before.st_mtime_ns) == (after.st_size, after.st_mtime_ns) \
        == version
    return PickupFacts(events, True, state, steady, why)
