"""Issue 33 item 5 against a real file system: the low-disk look's pace (space.SpaceWatch on
its thread) on a small tmpfs, which a recording fills between two slow looks."""

from __future__ import annotations

import time
from pathlib import Path

from support import fill_disk, small_tmpfs, wait_for

from daemon.station import space


def _watch(path: Path) -> tuple[space.SpaceWatch, list[float], list[str | None]]:
    """`low_disk = "24MiB"` on `path`, looked at every 0.05 s or every 30 s: its looks (after
    each, as retention runs) and what it said."""
    looks: list[float] = []
    said: list[str | None] = []
    watch = space.SpaceWatch(lambda: [str(path)], lambda: space.parse_threshold("24MiB"),
                             lambda name, message: said.append(message), every=0.05,
                             slow=30.0, then=lambda: looks.append(time.monotonic()))
    return watch, looks, said


def test_a_small_limit_on_a_quiet_disk_still_warns_within_the_fast_look(
        tmp_path: Path) -> None:
    """low_disk = "24MiB" (the documented example) on a 128 MiB disk: NEAR times the limit is
    96 MiB, so a quiet look at 128 MiB free was left for the slow one, and a recording (about
    a second of it at 100 MB/s) filled the disk with no warning for that long. A disk within
    `slow` seconds of a recording above its limit is looked at every `every`."""
    with small_tmpfs(tmp_path / "disk", "128m") as disk:
        watch, looks, said = _watch(disk)
        watch.start()
        try:
            # the first look is of a new path; the second sees it quiet and far from 24 MiB
            wait_for(lambda: len(looks) >= 2, 10, interval=0.01, what="two looks")
            assert said == []
            filler = fill_disk(disk)
            wait_for(lambda: said and said[-1] is not None, 5, interval=0.01,
                     what="the low_disk warning within a few fast looks")
            filler.unlink()
            wait_for(lambda: said[-1] is None, 5, interval=0.01, what="the warning cleared")
        finally:
            watch.stop()


def test_a_watch_folder_that_comes_back_is_looked_at_within_the_fast_look(
        tmp_path: Path) -> None:
    """A capture disk that is not there (unplugged: its folder missing) comes back almost full
    and a recording starts: it was left for the slow look, and filled with no warning for
    that long. A folder that is not there is looked at again every `every`, as one that does
    not answer is."""
    folder = tmp_path / "disk"
    watch, looks, said = _watch(folder)
    watch.start()
    try:
        wait_for(lambda: looks, 10, interval=0.01, what="a look, the folder missing")
        with small_tmpfs(folder, "16m") as disk:  # plugged in: less free than the limit
            fill_disk(disk)
            wait_for(lambda: said and said[-1] is not None, 5, interval=0.01,
                     what="the low_disk warning within a few fast looks")
    finally:
        watch.stop()
