"""The follower: one thread, owned by the service, that looks at each uploaded capture until
Uplift reports it final (schedule.py decides when and what an answer means; jobs/analysis.py
claims and writes). It sleeps on a condition until the soonest capture is due, and is woken
when an upload is done: nothing followed, no wake-ups.

A round claims the due captures (as many as can be read within half the claim's lease at
`max_rate`; in a fleet, nodes skip each other's), and releases those it has not read once half
the lease has gone (slow answers, a Retry-After, a slower pace): the lease, not the count, is
what keeps another node from taking them over mid-round. With more than one due, the
captures still processing are read a page at a time (`GET /captures?source=api&status=
processing&limit=500`), and only those absent from the pages are asked one by one: 1,000
followed captures cost a few requests per round. Every read goes through the station's pace
(net/pace.py). 401/403 pauses following (one notice, `analysis_credentials`);
uploads go on.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable

from daemon import logs
from daemon.analysis import schedule
from daemon.analysis.results import Result
from daemon.analysis.schedule import Answer, Verdict
from daemon.config.settings import AnalysisSettings
from daemon.errors import Kind, TransferError
from daemon.jobs.analysis import LEASE, AnalysisTable, AnalysisTakenOver, Followed
from daemon.net.api import ApiClient

log = logs.get("analysis")

PAGE = 500  # the list's largest page
MAX_PAGES = 10  # pages read per round; the rest are asked one by one
PAUSE = 600.0  # seconds following pauses after the key was refused
FLEET_WAKE = schedule.MAX_GAP  # a fleet node looks for captures a dead node left this often
NOTICE = "analysis_credentials"


class Follower:
    name = "follower"

    def __init__(self, table: AnalysisTable, api: ApiClient, settings: AnalysisSettings,
                 wall: Callable[[], float], on_result: Callable[[Result], None],
                 on_notice: Callable[[str, str | None], None], fleet: bool = False):
        self.table, self.api, self.settings = table, api, settings
        self.wall, self.on_result, self.on_notice = wall, on_result, on_notice
        self.fleet = fleet
        self._cv = threading.Condition()
        self._woken = False
        self._stopping = False
        self._paused_until: float | None = None  # monotonic
        self._noticed = False  # the `analysis_credentials` notice is up
        self._thread: threading.Thread | None = None

    # --- the service's side ---

    def start(self) -> None:
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="follower", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._cv:
            self._stopping = True
            self._cv.notify()
        if self._thread is not None:
            self._thread.join(10.0)

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def revive(self) -> None:
        """The health tick: a follower thread that died is started again."""
        if not self._stopping and not self.alive():
            log.error("analysis.follower_died")
            self.start()

    def wake(self) -> None:
        """An upload was done (or the key replaced): look at what is due now."""
        with self._cv:
            self._woken = True
            self._paused_until = None
            self._cv.notify()

    def reconfigure(self, settings: AnalysisSettings) -> None:
        self.settings = settings
        if self.api.pace is not None:
            self.api.pace.set_rate(settings.max_rate)
        self.wake()

    # --- the thread ---

    def _run(self) -> None:
        while not self._stopping:
            try:
                wait = self.round()
            except Exception as exc:  # the table away, say: try again in a while
                log.warning("analysis.round_failed", reason=str(exc)[:200])
                wait = 30.0
            with self._cv:
                if not self._woken and not self._stopping:
                    self._cv.wait(wait)
                self._woken = False

    def round(self) -> float | None:
        """One pass over the due captures; how long to sleep after it (None: until woken)."""
        if self._paused_until is not None:
            left = self._paused_until - time.monotonic()
            if left > 0:
                return left
            self._paused_until = None
        now = self.wall()
        due = self.table.claim(now, schedule.claim_size(self.settings.max_rate, LEASE))
        if due:
            self._look(due)
        soonest = self.table.next_due()
        if self._paused_until is not None:
            return max(0.0, self._paused_until - time.monotonic())
        wait = None if soonest is None else max(0.0, soonest - self.wall())
        if self.fleet:  # another node's captures, should it die
            wait = FLEET_WAKE if wait is None else min(wait, FLEET_WAKE)
        return wait

    def _look(self, due: list[Followed]) -> None:
        """Read and settle the claimed captures. The claim is the guard, not the count: once
        half its lease has gone (slow answers, a Retry-After's hold, a pace turned down), the
        captures not read yet are released, due at once, for the next round to claim anew
        under a fresh lease; read on, a fleet's other node would take them over at the
        lease's end and read them again. Those the pages answered need no read and are
        settled first; a round settles at least one capture, so a slow API still brings each
        to its final state by follow_for."""
        until = due[0].lease - LEASE / 2  # one claim, one lease end (wall time, as stored)
        answers: dict[str, Answer] = {}
        if len(due) > 1:
            answers = self._pages({f.session_id for f in due}, until)
            due = sorted(due, key=lambda f: f.session_id not in answers)  # stable
        for i, f in enumerate(due):
            if self._stopping or self._paused_until is not None:
                self._release(due[i:])
                return
            answer = answers.get(f.session_id)
            if answer is None and i > 0 and self.wall() >= until:
                log.info("analysis.round_cut", settled=i, released=len(due) - i,
                         lease=LEASE)
                self._release(due[i:])
                return
            self._settle(f, answer or self._ask(f.session_id))

    def _pages(self, wanted: set[str], until: float) -> dict[str, Answer]:
        """The captures still processing, read a page at a time, of those wanted (no page
        after the first once the wall clock reaches `until`); a failed page is the answer
        for every one still unfound, unless the page came but could not be read (a row we
        cannot parse, a page too large): those are asked one by one, else one odd row would
        leave every capture unanswered until follow_for ran out."""
        found: dict[str, Answer] = {}
        offset = 0
        for _ in range(MAX_PAGES):
            if offset and self.wall() >= until:
                break
            try:
                page, total = self.api.list_captures("processing", PAGE, offset)
            except TransferError as err:
                if err.kind in (Kind.MALFORMED, Kind.TOO_LARGE):
                    log.warning("analysis.list_unreadable", reason=err.message[:200])
                    return found
                failed = _failed(err)
                return found | {s: failed for s in wanted - set(found)}
            found |= {c.session_id: Answer(capture=c.status) for c in page
                      if c.session_id in wanted}
            offset += len(page)
            if not page or offset >= total or len(found) == len(wanted):
                break
        return found

    def _ask(self, session_id: str) -> Answer:
        try:
            c = self.api.get_capture(session_id)
        except TransferError as err:
            return _failed(err)
        return Answer(capture=c.status, error=c.error, fps=c.fps_detected)

    def _settle(self, f: Followed, answer: Answer) -> None:
        now = self.wall()
        step = schedule.decide(answer, now, f.looks + 1, f.deadline, self.settings.follow_for)
        try:
            if step.verdict is Verdict.PAUSE:
                self._pause(answer)
                self._release([f])
                return
            if step.verdict is Verdict.AGAIN:
                assert step.next_at is not None
                self.table.again(f, now, step.next_at)
                if answer.capture is None:
                    log.info("analysis.read_failed", job_id=f.job_id, session_id=f.session_id,
                             http=answer.http, reason=answer.reason,
                             next_in=round(step.next_at - now, 1))
                else:
                    self._key_works()
                return
            self.table.final(f, now, step.status, step.error, step.fps)
        except AnalysisTakenOver as exc:
            log.warning("analysis.taken_over", job_id=f.job_id, reason=str(exc))
            return
        if answer.capture is not None:
            self._key_works()
        log.info("analysis.final", job_id=f.job_id, path=f.path, session_id=f.session_id,
                 status=step.status, fps=step.fps, error=step.error)
        self.on_result(Result(f.job_id, f.path, f.athlete_id, f.session_id, step.status,
                              step.error, step.fps))

    def _key_works(self) -> None:
        if self._noticed:
            self._noticed = False
            self.on_notice(NOTICE, None)

    def _pause(self, answer: Answer) -> None:
        if not self._noticed:
            self._noticed = True
            log.warning("analysis.paused", http=answer.http, pause=PAUSE)
            self.on_notice(NOTICE, f"the Uplift API refused the key when asked about uploaded "
                                   f"captures (HTTP {answer.http}); their analysis is not "
                                   f"followed until the key is fixed (uploads go on)")
        self._paused_until = time.monotonic() + PAUSE

    def _release(self, items: Iterable[Followed]) -> None:
        now = self.wall()
        for f in items:
            with contextlib.suppress(AnalysisTakenOver):  # another node's now: nothing to do
                self.table.release([f], now)


def _failed(err: TransferError) -> Answer:
    http = err.status if err.kind is Kind.HTTP else None
    return Answer(http=http, retry_after=err.retry_after, reason=err.message[:200])
