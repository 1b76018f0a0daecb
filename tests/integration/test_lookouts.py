"""The lookouts (watch/lookouts.py) with real threads: a root whose look never returns holds
up no other root, piles up no second call, is reported stuck, and does not hold up stop()."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from support import wait_for

from daemon.config import CaptureSettings, WatchRoot
from daemon.watch.lookouts import LOOK, SCAN, Lookouts


def _root(path: Path) -> WatchRoot:
    return WatchRoot(path=path, capture=CaptureSettings())


def test_a_hung_root_holds_up_no_other_and_piles_up_nothing(tmp_path: Path) -> None:
    hung, fine = _root(tmp_path / "hung"), _root(tmp_path / "fine")
    release = threading.Event()
    calls: list[tuple[str, str]] = []
    lock = threading.Lock()

    def run(root: WatchRoot, task: str, beat: Callable[[], None]) -> None:
        with lock:
            calls.append((root.path.name, task))
        if root is hung:
            release.wait()  # a stat on a share whose server stopped answering

    lookouts = Lookouts(run, [hung, fine])
    try:
        assert not lookouts.ask(LOOK, wait=0.5)  # the hung one is not done in time...
        assert lookouts.ask(LOOK, [str(fine.path)], wait=5)  # ...the other answers still
        for _ in range(5):  # ticks while it hangs: nothing new starts on it
            lookouts.ask(LOOK)
            lookouts.ask(SCAN)
        assert lookouts.ask(SCAN, [str(fine.path)], wait=5)
        assert calls.count(("hung", LOOK)) == 1 and ("hung", SCAN) not in calls
        assert lookouts.stuck(limit=0.2).keys() == {str(hung.path)}
        started = time.monotonic()
        release.set()  # it answers: what was asked meanwhile runs once each, look first
        wait_for(lambda: calls.count(("hung", SCAN)) == 1, 5, what="the asked scan")
        assert calls.count(("hung", LOOK)) == 2
        wait_for(lambda: not lookouts.stuck(limit=0.2), 5, what="the root answering again")
        assert time.monotonic() - started < 5
    finally:
        release.set()
        lookouts.stop()


def test_stop_does_not_wait_for_a_thread_stuck_in_the_kernel(tmp_path: Path) -> None:
    never = threading.Event()
    lookouts = Lookouts(lambda root, task, beat: never.wait(), [_root(tmp_path)])
    lookouts.ask(LOOK)
    wait_for(lambda: lookouts.stuck(limit=0.0), 5, what="the look to start")
    started = time.monotonic()
    lookouts.stop(timeout=0.5)
    assert time.monotonic() - started < 2
    assert not lookouts.ask(LOOK, wait=None)  # stopped: nothing new, and no wait
    never.set()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_lookout_that_died_is_started_afresh(tmp_path: Path) -> None:
    root = _root(tmp_path)
    runs: list[str] = []

    def run(r: WatchRoot, task: str, beat: Callable[[], None]) -> None:
        runs.append(task)
        if len(runs) == 1:
            raise SystemExit  # escapes the loop's guard: the thread ends

    lookouts = Lookouts(run, [root])
    try:
        lookouts.ask(LOOK, wait=5)
        wait_for(lambda: lookouts.revive() == [str(root.path)], 5, what="the dead lookout")
        assert lookouts.ask(SCAN, wait=5) and runs == [LOOK, SCAN]
    finally:
        lookouts.stop()
