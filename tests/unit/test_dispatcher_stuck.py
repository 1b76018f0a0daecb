"""Issue 29 item 5: an upload slot whose thread is stuck in a call on its file (a hung share)
is let go by the supervisor: its job handed to `abandon`, its request cut, a new thread in the
slot; the thread left behind ends when it returns, without touching the slot; at most one such
thread per folder at a time."""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

from daemon.net.filecalls import FileCalls
from daemon.work.dispatcher import Dispatcher
from daemon.work.stuck import Stuck
from tests.support import wait_for
from tests.unit.test_dispatcher import Queue


def put(q: Queue, job_id: int, watch: str) -> None:
    with q.lock:
        q.items.append(SimpleNamespace(id=job_id, watch=watch, path=f"{watch}/{job_id}.mov"))


def stuck_then_other(d: Dispatcher, q: Queue, stuck_threads: list[threading.Thread],
                     done: list[int]) -> None:
    """Job 1 (the hung share's) gets stuck, then job 2 (the other folder's) is done while the
    health tick's supervision runs."""
    put(q, 1, "/share")
    d.start()
    wait_for(lambda: stuck_threads, 5, what="a thread stuck on the share's file")
    put(q, 2, "/local")
    d.wake()

    def checked() -> bool:
        d.check()
        return done == [2]

    wait_for(checked, 10, what="the other folder's job done in a freed place")


def test_a_slot_stuck_on_its_file_is_let_go_and_replaced_once_per_folder() -> None:
    q, calls, hang = Queue(), FileCalls(), threading.Event()
    done: list[int] = []
    abandoned: list[int] = []
    cut: list[threading.Thread] = []
    stuck_threads: list[threading.Thread] = []

    def process(job: Any) -> None:
        if job.watch == "/share":
            stuck_threads.append(threading.current_thread())
            with calls.on():  # a read on the hung share
                hang.wait(30)
        done.append(job.id)

    stuck = Stuck(calls.since, lambda: 0.2, lambda: frozenset({"/share"}), cut.append,
                  lambda job: abandoned.append(job.id))
    d = Dispatcher(1, q.claim, process, lambda job: None, stuck=stuck)
    try:
        stuck_then_other(d, q, stuck_threads, done)
        assert abandoned == [1] and cut == [stuck_threads[0]]
        assert d.busy() == 0
        # A second job of the same hung folder stuck while the first thread still is: kept.
        put(q, 3, "/share")
        d.wake()
        wait_for(lambda: len(stuck_threads) == 2, 5, what="the second share job stuck")
        for _ in range(5):
            d.check()
            threading.Event().wait(0.1)
        assert abandoned == [1] and d.busy() == 1
        hang.set()  # the share answers: both return
        wait_for(lambda: not stuck_threads[0].is_alive(), 5, what="the stale thread to end")
        wait_for(lambda: d.busy() == 0 and 3 in done, 5, what="the kept job to finish")
        d.check()  # the stale thread is gone: a later hang may free a slot again
        assert d.slots.stale is not None and len(d.slots.stale) == 0
    finally:
        hang.set()
        d.stop(1)


def test_a_reserver_stuck_on_its_file_is_let_go_and_replaced() -> None:
    """Reserve-ahead looks at a job's file before reserving it: stuck there on a hung share,
    every reserver held, the slots (which never claim with reserve-ahead) had nothing."""
    q, calls, hang = Queue(), FileCalls(), threading.Event()
    uploaded: list[int] = []
    abandoned: list[int] = []
    stuck_threads: list[threading.Thread] = []

    def reserve(job: Any) -> Any:
        if job.watch == "/share":
            stuck_threads.append(threading.current_thread())
            with calls.on():  # the file's stat on the hung share
                hang.wait(30)
            calls.check()  # let go meanwhile: nothing more
        return job

    def cut(thread: threading.Thread) -> None:
        calls.let_go(thread)

    stuck = Stuck(calls.since, lambda: 0.2, lambda: frozenset({"/share"}), cut,
                  lambda job: abandoned.append(job.id))
    d = Dispatcher(1, q.claim, lambda job: None, lambda job: None, reserve=reserve,
                   upload=lambda job: uploaded.append(job.id), release=lambda job: None,
                   reservers=1, stuck=stuck)
    try:
        stuck_then_other(d, q, stuck_threads, uploaded)
        assert abandoned == [1]
        hang.set()
        wait_for(lambda: not stuck_threads[0].is_alive(), 5, what="the stale reserver to end")
        assert uploaded == [2]  # it reserved nothing after it was let go
        put(q, 3, "/local")
        d.wake()
        wait_for(lambda: uploaded == [2, 3], 5, what="the next job, the hand-off whole")
    finally:
        hang.set()
        d.stop(1)
