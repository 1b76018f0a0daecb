"""Windows that run out: what the uploads showed about the link (rate, window length), the
fit check before a capture is created, and what a lapse leads to. The decisions are pure
(fit.decide, errors.after_lapse); this is their edge: measuring, reading the config, counting."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Protocol

from daemon.config import Config
from daemon.errors import Decision, Kind, Outcome, TransferError, Where, after_lapse
from daemon.jobs.models import Job
from daemon.net.bandwidth import Timetable, parse_limit
from daemon.work import fit
from daemon.work.schedule import Hours, parse_hours

if TYPE_CHECKING:
    from daemon.net.api import Reserved

MIN_MEASURE = 4.0  # seconds: a shorter upload says more about latency than about the rate


class Link:
    """The latest rates measured over long enough uploads under one limit each, and the
    window the API grants."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._measured: tuple[fit.Measured, ...] = ()
        self._window: float | None = None

    def note_rate(self, acked: int, seconds: float, limit: float, steady: bool = True) -> None:
        """`steady`: one limit held throughout; an upload across a change is dropped."""
        if seconds < MIN_MEASURE or acked <= 0 or not steady:
            return
        with self._lock:
            self._measured = tuple(fit.counted([*self._measured,
                                                fit.Measured(acked / seconds, limit)]))

    def note_window(self, seconds: float) -> None:
        with self._lock:
            self._window = seconds

    def facts(self) -> tuple[tuple[fit.Measured, ...], float | None]:
        with self._lock:
            return self._measured, self._window


class Meter:
    """Wraps an upload's progress callback: bytes acknowledged, and when; `changes`: the
    limiter's count of limit changes when it began (a later count: the limit changed)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, changes: int = 0):
        self.clock, self.changes = clock, changes
        self.started = clock()
        self.acked, self.at = 0, self.started

    def wrap(self, report: Callable[[int], None]) -> Callable[[int], None]:
        def progress(acked: int) -> None:
            self.acked, self.at = acked, self.clock()
            report(acked)
        return progress

    def seconds(self) -> float:
        return self.at - self.started


@lru_cache(maxsize=8)
def _table(text: str) -> Timetable:
    return parse_limit(text)


@lru_cache(maxsize=8)
def _hours(text: str) -> Hours | None:
    return parse_hours(text) if text else None


class Measuring(Protocol):
    """What the fit check needs of the pipeline (pipeline.py passes itself)."""
    cfg: Config
    uploader: Any  # its `limiter`, when it has one
    link: Link
    wall: Callable[[], float]
    rand: Callable[[], float]

    def lapsed(self, job: Job, res: Reserved, bound: Any, why: str) -> int: ...


def limit_now(p: Measuring) -> tuple[float, int]:
    """The limit in force (0 = none) and how often it has changed so far."""
    limiter = getattr(p.uploader, "limiter", None)
    return (float(limiter.rate), limiter.changes) if limiter is not None else (0.0, 0)


def meter(p: Measuring, clock: Callable[[], float]) -> Meter:
    return Meter(clock, limit_now(p)[1])


def note_rate(p: Measuring, m: Meter, acked: int, seconds: float) -> None:
    """What an upload measured, void when the limit changed while it ran."""
    limit, changes = limit_now(p)
    p.link.note_rate(acked, seconds, limit, steady=changes == m.changes)


def verdict(p: Measuring, job: Job) -> fit.Fit:
    measured, window = p.link.facts()
    if not measured or window is None:
        return fit.Fit(fit.Verdict.FITS)  # nothing known: the common case, no parsing
    up = p.cfg.upload
    return fit.decide(job.size, measured, window, _table(up.bandwidth_limit), _hours(up.hours),
                      datetime.fromtimestamp(p.wall()), up.concurrency)


def as_decision(f: fit.Fit, now: float) -> Decision | None:
    """None when it fits (or is to be measured again: trying measures); else what the job
    does: wait for its time, or fail."""
    if f.verdict in (fit.Verdict.FITS, fit.Verdict.MEASURE):
        return None
    if f.verdict is fit.Verdict.WAIT and f.at is not None:
        return Decision(Outcome.WAIT, delay=max(0.0, f.at.timestamp() - now), reason=f.reason)
    return Decision(Outcome.FAIL, reason=f.reason)


def check_fit(p: Measuring, job: Job) -> None:
    """Before a capture is created: a window the file cannot fit is not reserved at all."""
    d = as_decision(verdict(p, job), p.wall())
    if d is not None:
        err = TransferError(Where.STORAGE, Kind.TOO_SLOW, d.reason)
        err.decided = d
        raise err


def lapsed(p: Measuring, job: Job, res: Reserved, err: TransferError, in_claim: int,
           meter: Meter, bound: Any) -> Decision:
    """A window ran out during its upload (recorded and counted here): RERESERVE to go on in
    this claim, or what the job does instead (wait, back off, fail)."""
    note_rate(p, meter, meter.acked, meter.seconds())
    lapses = p.lapsed(job, res, bound, err.message)
    f = verdict(p, job)
    d = as_decision(f, p.wall())
    if d is None:
        d = after_lapse(lapses, in_claim, err, p.rand)
        if f.verdict is fit.Verdict.MEASURE and d.outcome is Outcome.RETRY:
            d = replace(d, reason=f.reason)  # queued until it measures again: say why
    if d.outcome is not Outcome.RERESERVE:
        bound.warning("job.lapses_ended", lapses=lapses, outcome=str(d.outcome),
                      reason=d.reason)
    return d
