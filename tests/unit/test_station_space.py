"""Issue 33, item 5: the low-disk check bounded in time. A watch folder on a share whose
server stopped answering hangs statvfs for good; the check must not wait for it (the other
file systems are still looked at) and must not pile up threads on it. The hung statvfs is a
stand-in (this one function replaced), as a real hung mount needs a FUSE server."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.station import fsprobe, space


@pytest.fixture
def hung(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    release = threading.Event()
    real = os.statvfs
    calls: list[str] = []

    def statvfs(path: str) -> os.statvfs_result:
        if path == "/hung/share":
            calls.append(path)
            release.wait()
        return real(path)

    monkeypatch.setattr(os, "statvfs", statvfs)
    yield "/hung/share"
    release.set()


def test_a_hung_watch_folder_does_not_stall_the_check(tmp_path: Path, hung: str) -> None:
    said: list[tuple[str, str | None]] = []
    watch = space.SpaceWatch(lambda: [hung, str(tmp_path)], lambda: space.Threshold(share=0.99),
                             lambda n, m: said.append((n, m)), wait=0.3)
    for _ in range(3):
        started = time.monotonic()
        watch.check()
        assert time.monotonic() - started < 1.5
    # the disk that answers is reported (99 % of it is never free here); the hung one is not
    assert said == [("low_disk", space.message({str(tmp_path): watch._low[str(tmp_path)]}))]
    assert len([t for t in threading.enumerate() if t.name == f"statvfs {hung}"]) == 1


def test_the_thread_warns_and_stops(tmp_path: Path) -> None:
    said: list[tuple[str, str | None]] = []
    threshold = [space.Threshold(share=0.99)]
    watch = space.SpaceWatch(lambda: [str(tmp_path)], lambda: threshold[0],
                             lambda n, m: said.append((n, m)), every=0.05)
    watch.start()
    try:
        deadline = time.monotonic() + 5
        while not said and time.monotonic() < deadline:
            time.sleep(0.02)
        assert said and said[0][1] is not None
        threshold[0] = space.OFF  # a reload switched it off: cleared
        while said[-1][1] is not None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert said[-1] == ("low_disk", None)
    finally:
        watch.stop()
    assert not watch.revive()  # stopped on purpose: not started again
    assert fsprobe.space(str(tmp_path)) is not None


def test_a_quiet_disk_is_looked_at_slowly_until_poked_and_fast_while_asked(
        tmp_path: Path) -> None:
    """Far from its limit and unchanged, the next look waits for `slow`; a poke (a reload), a
    file event (`seen`) or `fast()` (retention on) brings it at `every`."""
    looks: list[float] = []
    fast = [False]
    watch = space.SpaceWatch(lambda: [str(tmp_path)], lambda: space.OFF, lambda n, m: None,
                             every=0.02, slow=30.0, then=lambda: looks.append(time.monotonic()),
                             fast=lambda: fast[0])
    watch.start()
    try:
        deadline = time.monotonic() + 5
        while len(looks) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)  # the first look is of a new path: the second comes soon
        assert len(looks) == 2
        time.sleep(0.3)  # fifteen `every`s: a quiet disk is not looked at again
        assert len(looks) == 2
        watch.poke()
        while len(looks) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(looks) == 3
        time.sleep(0.3)
        assert len(looks) == 3
        watch.seen("/captures/jane/take1.mov")  # a file event under a watch folder
        while len(looks) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(looks) == 4
        fast[0] = True
        watch.poke()  # out of the slow wait it is in now
        while len(looks) < 8 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(looks) >= 8
    finally:
        watch.stop()


def test_a_read_only_file_system_is_never_low(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A watch folder on a card or image mounted read-only reports no space free: nothing is
    ever recorded there, so no `low_disk` for it (it showed one for good)."""
    real = os.statvfs

    def statvfs(path: str) -> os.statvfs_result:
        st = real(path)
        fields = list(st)
        fields[4] = fields[5] = 0  # f_bfree, f_bavail
        fields[8] = st.f_flag | os.ST_RDONLY
        return os.statvfs_result(fields)

    monkeypatch.setattr(os, "statvfs", statvfs)
    said: list[tuple[str, str | None]] = []
    watch = space.SpaceWatch(lambda: [str(tmp_path)], lambda: space.DEFAULT,
                             lambda n, m: said.append((n, m)))
    watch.check()
    assert said == [] and watch._low == {}
