"""The watcher in-process with a real job table and real folders: a dead observer is restarted,
a removed root is reported and watched again when it is back, a polling root finds files
without inotify, renames and copies are one upload."""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path

import pytest
from support import ATHLETE, make_movie, wait_for

from daemon.jobs.models import JobState
from daemon.jobs.store import Store
from daemon.watch.intake import Watcher


@pytest.fixture
def setup(watched_store):
    cfg, store, captures = watched_store
    return cfg, store, threading.Event(), captures / ATHLETE


def states(store: Store) -> dict[str, str]:
    return {Path(j.path).name: j.state for j in store.jobs()}


def observer_of(watcher: Watcher):
    (w,) = watcher.observers._watches.values()
    return w.observer


def test_dead_observer_is_restarted_and_rescan_finds_missed_files(setup, tmp_path: Path) -> None:
    cfg, store, queued, folder = setup
    watcher = Watcher(cfg, store, on_queued=queued.set)
    watcher.start()
    try:
        observer = observer_of(watcher)
        observer.stop()
        observer.join()
        make_movie(folder / "missed.mov", frames=2)  # no observer: no event
        assert not wait_for_state(store, "missed.mov", JobState.QUEUED, 1.0)
        watcher.observers.check()  # the service's health tick
        watcher.rescan()
        assert wait_for_state(store, "missed.mov", JobState.QUEUED, 10)
        replacement = observer_of(watcher)
        assert replacement is not observer and replacement.is_alive()
        make_movie(folder / "after.mov", frames=2)  # events flow again
        assert wait_for_state(store, "after.mov", JobState.QUEUED, 10)
    finally:
        watcher.stop()


def test_a_removed_root_is_reported_and_watched_again_when_back(setup) -> None:
    cfg, store, queued, _ = setup
    reports: list[tuple[str, str | None]] = []
    watcher = Watcher(cfg, store, on_queued=queued.set,
                      on_root=lambda root, why: reports.append((root, why)))
    watcher.start()
    try:
        root = cfg.watches[0].path
        root.rename(root.with_name("gone"))  # the share went away
        watcher.observers.check()
        assert reports and reports[-1][1] and "cannot be watched" in reports[-1][1]
        assert watcher.observers.lost() == [str(root)]
        (root / ATHLETE).mkdir(parents=True)  # made again (a remount, a sync tool)
        watcher.observers.check()
        assert reports[-1] == (str(root), None) and watcher.observers.lost() == []
        make_movie(root / ATHLETE / "back.mov", frames=2)
        assert wait_for_state(store, "back.mov", JobState.QUEUED, 10)
    finally:
        watcher.stop()


def test_polling_root_finds_files(setup) -> None:
    cfg, store, queued, folder = setup
    polled = dataclasses.replace(cfg, watches=tuple(
        dataclasses.replace(w, poll=True) for w in cfg.watches),
        watching=dataclasses.replace(cfg.watching, poll_interval=0.2))
    watcher = Watcher(polled, store, on_queued=queued.set)
    watcher.start()
    try:
        assert type(observer_of(watcher)).__name__ == "PollingObserver"
        make_movie(folder / "share.mov", frames=2)
        (folder / "sub").mkdir()
        make_movie(folder / "sub" / "deeper.mov", frames=2)
        assert wait_for_state(store, "share.mov", JobState.QUEUED, 10)
        assert wait_for_state(store, "deeper.mov", JobState.QUEUED, 10)
        assert queued.is_set()
    finally:
        watcher.stop()


def test_rescan_of_known_files_costs_no_queries(setup) -> None:
    cfg, store, queued, folder = setup
    make_movie(folder / "a.mov", frames=2)
    watcher = Watcher(cfg, store, on_queued=queued.set)
    watcher.start()
    try:
        assert wait_for_state(store, "a.mov", JobState.QUEUED, 10)
        # Recorded as settled just after the job is queued.
        wait_for(lambda: str(folder / "a.mov") in watcher._known, 5, what="known")
        assert watcher.scan(cfg.watches[0], str(cfg.watches[0].path)) == 0
    finally:
        watcher.stop()


def wait_for_state(store: Store, name: str, state: JobState, timeout: float) -> bool:
    try:
        wait_for(lambda: states(store).get(name) == state, timeout, 0.05, what=name)
        return True
    except AssertionError:
        return False


def test_links_out_of_the_root_are_refused_links_within_it_count(setup, tmp_path: Path) -> None:
    cfg, store, queued, folder = setup
    outside = make_movie(tmp_path / "elsewhere" / "secret.mov", frames=2)
    inside = make_movie(folder / ".originals" / "real.mov", frames=2)  # hidden: not a job itself
    watcher = Watcher(cfg, store, on_queued=queued.set)
    watcher.start()
    try:
        (folder / "out.mov").symlink_to(outside)
        (folder / "sub").mkdir()
        (folder / "sub" / "in.mov").symlink_to(inside)
        watcher.rescan()
        assert wait_for_state(store, "out.mov", JobState.SKIPPED, 10)
        assert wait_for_state(store, "in.mov", JobState.QUEUED, 10)
        (job,) = [j for j in store.jobs() if j.path.endswith("out.mov")]
        assert "outside the watch folder" in job.last_error
    finally:
        watcher.stop()


def test_a_wall_clock_step_backwards_does_not_hold_files(setup) -> None:
    """Settling runs on the monotonic clock: an NTP step of an hour back (the wall clock the
    intake stores) does not keep a file waiting for an hour."""
    cfg, store, queued, folder = setup
    calls = [0]

    def wall() -> float:  # steps back an hour right after the file is first seen
        calls[0] += 1
        return time.time() - (3600 if calls[0] > 1 else 0)

    watcher = Watcher(cfg, store, on_queued=queued.set, wall=wall)
    watcher.start()
    try:
        make_movie(folder / "stepped.mov", frames=2)
        assert wait_for_state(store, "stepped.mov", JobState.QUEUED, 10)
    finally:
        watcher.stop()
