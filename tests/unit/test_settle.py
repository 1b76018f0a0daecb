"""The settle queue's supervision with a passed-in clock: a check that does not come back for a
minute is noticed, the thread is replaced, the stuck key is not handed out beside it, and too
many stuck threads at once is a reason to exit for systemd."""

from __future__ import annotations

import threading

from support import wait_for

from daemon.watch import settle
from daemon.watch.settle import SettleQueue


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Conditions:
    def __init__(self) -> None:
        self.now: dict[str, str] = {}

    def condition(self, name: str, message: str | None) -> None:
        if message is None:
            self.now.pop(name, None)
        else:
            self.now[name] = message


def test_a_stuck_check_is_noticed_after_a_minute_and_the_thread_replaced() -> None:
    clock, attention = Clock(), Conditions()
    release = threading.Event()
    done: list[str] = []

    def check(key: str) -> None:
        if key == "/w/fifo.mov":
            release.wait(30)  # a read on a hung share: never returns by itself
        done.append(key)

    queue = SettleQueue(check, clock)
    queue.start()
    try:
        queue.schedule("/w/fifo.mov")
        wait_for(lambda: queue.stuck(0.0), 5, what="the check to start")
        clock.now += settle.STUCK_AFTER - 1
        assert queue.stuck() is None
        assert settle.supervise(queue, attention) is None and attention.now == {}
        clock.now += 1
        assert queue.stuck() == ("/w/fifo.mov", settle.STUCK_AFTER)

        assert settle.supervise(queue, attention) is None  # replaced, not fatal
        assert "/w/fifo.mov" in attention.now["settle"]
        assert queue.stranded() == ["/w/fifo.mov"] and queue.stuck() is None
        queue.schedule("/w/good.mov")  # the fresh thread settles the others
        wait_for(lambda: "/w/good.mov" in done, 5, what="the fresh thread")
        queue.schedule("/w/fifo.mov")  # not checked a second time beside the stuck one
        queue.schedule("/w/after.mov")
        wait_for(lambda: "/w/after.mov" in done, 5, what="the next key")
        assert "/w/fifo.mov" not in done

        release.set()  # the read returned: the old thread finishes its key and ends
        wait_for(lambda: done.count("/w/fifo.mov") == 1 and not queue.stranded(), 5,
                 what="the old thread to end")
        assert settle.supervise(queue, attention) is None and attention.now == {}
        clock.now += settle.STUCK_AFTER  # deferred while stranded, then checked once more
        queue.schedule("/w/nudge.mov")
        wait_for(lambda: done.count("/w/fifo.mov") == 2, 5, what="the deferred key")
        assert queue.alive()
    finally:
        release.set()
        queue.stop()


def test_too_many_stuck_threads_at_once_is_fatal() -> None:
    clock, attention = Clock(), Conditions()
    release = threading.Event()
    queue = SettleQueue(lambda key: release.wait(30), clock)
    queue.start()
    try:
        for n in range(settle.MAX_STRANDED + 1):
            queue.schedule(f"/w/{n}.mov")
            wait_for(lambda: queue.stuck(0.0), 5, what="a check to start")
            clock.now += settle.STUCK_AFTER
            problem = settle.supervise(queue, attention)
        assert problem is not None and f"{settle.MAX_STRANDED + 1} settle threads" in problem
    finally:
        release.set()
        queue.stop()
