"""The upload slots: `count` threads (two per send turn: work/turns.py), each uploading one job
at a time. With reserve-ahead they take jobs already claimed and reserved from the hand-off
(handoff.py), so a slot goes from one upload straight to the next instead of waiting on an API
round trip; without it, a slot claims and reserves by itself. This runnable owns its threads,
their loop and what each holds."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from daemon import logs
from daemon.jobs.models import Job
from daemon.work.claims import Backoff, Claims, failed
from daemon.work.handoff import Item, ReservedJobs
from daemon.work.stuck import Stale, Stuck
from daemon.work.wakeups import Wakeups

log = logs.get("worker")


class Slots:
    """`process(job)` reserves and uploads a job the slot claimed itself; `upload(token)`
    uploads one reserved ahead (`ahead`: reservers fill `reserved`, and slots never claim)."""

    def __init__(self, count: int, wakeups: Wakeups, reserved: ReservedJobs, claims: Claims,
                 process: Callable[[Job], None], upload: Callable[[Any], None] | None,
                 gate: Callable[[], float], ahead: bool,
                 clock: Callable[[], float], stuck: Stuck | None = None):
        self.wakeups, self.reserved, self.claims = wakeups, reserved, claims
        self.process, self.upload, self.gate = process, upload, gate
        self.ahead, self.clock = ahead, clock
        self._cond = threading.Condition()
        self._threads: list[threading.Thread | None] = [None] * count
        self._current: list[Job | None] = [None] * count
        self._busy = 0
        self.stale = Stale(stuck, clock) if stuck is not None else None

    def start(self) -> None:
        for slot in range(len(self._threads)):
            self._spawn(slot)

    def check(self) -> None:
        """Supervision: a thread that died is logged, its job requeued, and restarted; one
        stuck on a file that stopped answering is let go (stuck.py)."""
        for slot, thread in enumerate(self._threads):
            if thread is None or thread.is_alive() or self.wakeups.stopping():
                continue
            with self._cond:
                job = self._current[slot]
            log.error("worker.slot_died", slot=slot, job_id=job.id if job else None)
            if job is not None:
                self.claims.orphan(job)
                self._release(slot)
            self._spawn(slot)
        if self.stale is not None and not self.stale.quiet() and not self.wakeups.stopping():
            with self._cond:
                held = list(zip(self._threads, self._current, strict=True))
            for slot in self.stale.look(held):
                self._let_go(self.stale, slot, *held[slot])

    def _let_go(self, stale: Stale, slot: int, thread: threading.Thread | None,
                job: Job | None) -> None:
        """A new thread in the slot of one stuck on its file (stuck.py), first: from then on
        the old one, if it returns, finds the slot not its own and ends without touching it.
        Then its job goes back to the queue and the old thread is cut off."""
        with self._cond:
            if thread is None or job is None or self._threads[slot] is not thread or \
                    self._current[slot] is not job:
                return  # it moved on meanwhile: not stuck
            fresh = self._new_thread(slot)
            self._release_locked(slot)
        stale.let_go(thread, job, f"upload-{slot}")
        fresh.start()
        self._after_release(None)
        log.info("worker.slot_replaced", slot=slot, thread=fresh.name, stale=len(stale))

    def busy(self) -> int:
        with self._cond:
            return self._busy

    def wait_idle(self, deadline: float, force: Callable[[], bool]) -> bool:
        """Until no slot holds a job, `deadline` or `force()`; True when none does."""
        with self._cond:
            while self._busy and self.clock() < deadline and not force():
                self._cond.wait(min(0.2, max(0.0, deadline - self.clock())))
            return not self._busy

    def _spawn(self, slot: int) -> None:
        self._new_thread(slot).start()

    def _new_thread(self, slot: int) -> threading.Thread:
        thread = threading.Thread(target=self._run, args=(slot,), name=f"upload-{slot}",
                                  daemon=True)
        self._threads[slot] = thread
        return thread

    def _run(self, slot: int) -> None:
        backoff = Backoff()
        item: Item | None = None  # handed over as the previous upload ended
        gen = 0
        while True:
            if item is None:
                now_gen = self.wakeups.generation()
                if now_gen is None:
                    return
                gen = now_gen
                wait = self.gate()
                if wait > 0:
                    self.claims.gated(gen, wait)
                    continue
                item = self._take(slot)
            if item is None and self.ahead:
                # The reservers claim (as many round trips in flight as slots, at least, as
                # before); a slot's own claim would add API load the moment it is held.
                self.wakeups.sleep(gen, None)
                continue
            if item is None:
                claimed, pause = self.claims.claim(backoff)
                if claimed is None:
                    self.wakeups.sleep(gen, pause)
                    continue
                item = (claimed, None)
                with self._cond:
                    self._busy += 1
                    self._current[slot] = claimed
            job, token = item
            started = self.clock()
            try:
                if token is None:
                    self.process(job)
                else:
                    assert self.upload is not None
                    self.upload(token)
            except Exception as exc:  # the job table failed under it, or a bug: never lose it
                failed(job.id, exc)
                self.claims.orphan(job)
            # Not in a `finally`: a thread that dies keeps its job here for check() to requeue.
            # A reserved job that waits is taken in the same step, so the slot's connection
            # idles as briefly as possible between two uploads.
            took = self.clock() - started if token is not None else None
            mine, item = self._end(slot, took, take=token is not None and self._open())
            if not mine:  # let go while stuck (stuck.py): another thread holds the slot now
                log.info("worker.stale_thread_returned", job_id=job.id, slot=slot)
                return

    def _open(self) -> bool:
        """The gate is open. Never raises: the slot still holds its finished job here."""
        try:
            return self.gate() <= 0
        except Exception:
            log.exception("worker.gate_failed")
            return False

    def _take(self, slot: int) -> Item | None:
        """The oldest job reserved ahead, now this slot's."""
        with self._cond:
            item = self._take_locked(slot)
        if item is not None:
            self.wakeups.nudge()  # room ahead: a reserver may claim the next
        return item

    def _take_locked(self, slot: int) -> Item | None:
        if self.wakeups.stopping():
            return None
        item = self.reserved.take()
        if item is not None:
            self._busy += 1
            self._current[slot] = item[0]
        return item

    def _release(self, slot: int) -> None:
        """The slot's job ended (its thread died)."""
        with self._cond:
            self._release_locked(slot)
        self._after_release(None)

    def _end(self, slot: int, took: float | None, take: bool) -> tuple[bool, Item | None]:
        """The calling thread's job ended; with `take`, the next reserved job is taken at
        once. (False, None) when the thread is no longer the slot's (let go while stuck)."""
        with self._cond:
            if self._threads[slot] is not threading.current_thread():
                return False, None
            item = self._release_locked(slot, took, take)
        self._after_release(item)
        return True, item

    def _release_locked(self, slot: int, took: float | None = None,
                        take: bool = False) -> Item | None:
        self._busy -= 1
        self._current[slot] = None
        if took is not None:
            self.reserved.uploaded(took)
        item = self._take_locked(slot) if take else None
        self._cond.notify_all()
        return item

    def _after_release(self, item: Item | None) -> None:
        # Its outcome may have put a job back in the queue; a job taken leaves room ahead.
        if item is not None:
            self.wakeups.nudge(work=True)
        else:
            self.wakeups.more_work()
