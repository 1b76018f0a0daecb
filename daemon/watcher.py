"""The watcher: finds .mov files in the watch roots and records facts about them.

Events (close-after-write, moved-in, created) and scans only make *candidates*. One settle thread
stats each candidate until its size and mtime have held for `settle_seconds`; then the file is
placed (athlete, session group), inspected (a finished QuickTime movie?) and queued. The watcher
never talks to the network.
"""

from __future__ import annotations

import heapq
import json
import os
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePath

from watchdog.events import (
    DirCreatedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from daemon import layout, logs, movie, sidecar
from daemon.config import Config, ConfigError, WatchRoot
from daemon.errors import file_error
from daemon.jobs.models import JobState
from daemon.jobs.store import Ready, Store
from daemon.timeutil import iso_utc

# Without an explicit filter watchdog also delivers open/close-nowrite events, which flood the
# inotify queue on large trees (and the daemon's own reads would feed it).
EVENT_FILTER = [FileCreatedEvent, FileClosedEvent, FileMovedEvent, DirCreatedEvent, DirMovedEvent]
log = logs.get("watcher")


@dataclass
class _Candidate:
    root: WatchRoot
    job_id: int | None = None
    size: int = -1
    mtime_ns: int = -1
    changed_at: float = 0.0


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: Watcher, root: WatchRoot):
        self.watcher, self.root = watcher, root

    def on_any_event(self, event: FileSystemEvent) -> None:
        path = event.dest_path if isinstance(event, FileMovedEvent | DirMovedEvent) else \
            event.src_path
        path = os.fsdecode(path)
        if not path:
            return
        try:
            if event.is_directory:
                self.watcher.folder_arrived(self.root, path)
            else:
                self.watcher.candidate(self.root, path)
        except Exception:  # an exception here would end the observer thread
            log.exception("watch.event_error", path=path)


class Watcher:
    def __init__(self, cfg: Config, store: Store, on_queued: Callable[[], None],
                 clock: Callable[[], float] = time.time,
                 on_fatal: Callable[[str], None] = lambda why: None):
        self.cfg, self.store, self.on_queued, self.clock = cfg, store, on_queued, clock
        self.on_fatal = on_fatal
        self._known: dict[str, tuple[int, int]] = {}  # path -> version needing nothing more
        self._cond = threading.Condition()
        self._cands: dict[str, _Candidate] = {}
        self._folders: dict[str, WatchRoot] = {}
        self._due: list[tuple[float, str]] = []  # heap of (when, path)
        self._stop = False
        self._observers: list[tuple[WatchRoot, BaseObserver]] = []
        self._thread = threading.Thread(target=self._settle_loop, name="settle", daemon=True)

    @property
    def settle(self) -> float:
        return self.cfg.upload.settle_seconds

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Observe first, then scan, so nothing that lands in between is missed."""
        self._known = self.store.known_versions()
        self._thread.start()
        for root in self.cfg.watches:
            self._observers.append((root, self._observe(root)))
        for path in self.store.pending_paths():
            root = self.root_of(path)
            if root is not None:
                self.candidate(root, path)
        for root in self.cfg.watches:
            self.scan(root, str(root.path))
        log.info("watch.started", roots=[str(r.path) for r in self.cfg.watches])

    def _observe(self, root: WatchRoot) -> BaseObserver:
        """An observer for one root; polling where asked, or where inotify cannot watch it
        (e.g. the inotify watch limit is reached)."""
        kinds = [True] if root.poll else [False, True]
        for poll in kinds:
            observer = PollingObserver(timeout=self.cfg.watching.poll_interval) if poll \
                else Observer()
            try:
                observer.schedule(_Handler(self, root), str(root.path), recursive=True,
                                  event_filter=EVENT_FILTER)
                observer.start()
                return observer
            except OSError as exc:
                log.error("watch.cannot_watch", root=str(root.path), polling=poll,
                          reason=exc.strerror or str(exc))
                if poll:
                    raise
        raise AssertionError("unreachable")

    def rescan(self) -> None:
        """Periodic: find what events missed, and make sure every observer still runs."""
        self.check_observers()
        for path in self.store.pending_paths():  # held, or put back by `retry`
            root = self.root_of(path)
            if root is not None:
                self.candidate(root, path)
        for root in self.cfg.watches:
            self.scan(root, str(root.path))

    def reconfigure(self, cfg: Config) -> None:
        """SIGHUP: new roots, athletes and defaults. Observers of unchanged roots keep running;
        held files are looked at again (an alias may have been added)."""
        old = {r.path: (r, o) for r, o in self._observers}
        kept: list[tuple[WatchRoot, BaseObserver]] = []
        for root in cfg.watches:
            if root.path in old and old[root.path][0].poll == root.poll:
                kept.append((root, old.pop(root.path)[1]))
            else:
                kept.append((root, self._observe(root)))
        for _, observer in old.values():
            observer.stop()
        self.cfg = cfg
        self._observers = kept
        roots = {r.path: r for r in cfg.watches}
        with self._cond:  # candidates keep their root objects: point them at the new ones
            for cand in self._cands.values():
                cand.root = roots.get(cand.root.path, cand.root)
        self.rescan()

    def check_observers(self) -> None:
        for i, (root, observer) in enumerate(self._observers):
            if observer.is_alive():
                continue
            log.error("watch.observer_died", root=str(root.path))
            try:
                self._observers[i] = (root, self._observe(root))
                log.info("watch.observer_restarted", root=str(root.path))
            except OSError as exc:
                self.on_fatal(f"cannot watch {root.path}: {exc.strerror or exc}")

    def stop(self) -> None:
        for _, observer in self._observers:
            observer.stop()
        for _, observer in self._observers:
            observer.join(timeout=5)
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def root_of(self, path: str) -> WatchRoot | None:
        for root in self.cfg.watches:
            if PurePath(path).is_relative_to(root.path):
                return root
        return None

    # ---- intake (any thread) ---------------------------------------------------------------

    def candidate(self, root: WatchRoot, path: str) -> None:
        rel = PurePath(path).relative_to(root.path)
        if not layout.is_candidate(rel):
            return
        with self._cond:
            if path not in self._cands:
                self._cands[path] = _Candidate(root)
            self._schedule(path, self.clock())

    def resettle(self, path: str) -> None:
        root = self.root_of(path)
        if root is not None:
            self.candidate(root, path)

    def folder_arrived(self, root: WatchRoot, path: str) -> None:
        """A folder created or moved in: its files may have no events of their own. Walk it now,
        and again once it has had time to fill (cp -r writes files before we watch them)."""
        rel = PurePath(path).relative_to(root.path)
        if layout.is_ignored_dir(rel):
            return
        self.scan(root, path)
        with self._cond:
            self._folders[path] = root
            self._schedule("dir:" + path, self.clock() + self.settle)

    def scan(self, root: WatchRoot, top: str) -> int:
        found = 0
        for dirpath, dirnames, filenames in os.walk(top, followlinks=False):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for name in filenames:
                if not name.lower().endswith(".mov"):
                    continue
                path = os.path.join(dirpath, name)
                try:
                    st = os.stat(path, follow_symlinks=False)
                except OSError:
                    continue
                if self._known.get(path) != (st.st_size, st.st_mtime_ns):
                    self.candidate(root, path)
                    found += 1
        return found

    def _schedule(self, key: str, when: float) -> None:
        heapq.heappush(self._due, (when, key))
        self._cond.notify()

    # ---- the settle thread -----------------------------------------------------------------

    def _settle_loop(self) -> None:
        while True:
            with self._cond:
                while not self._stop and (not self._due or self._due[0][0] > self.clock()):
                    # Sleep until the next deadline; with nothing to settle, until an event.
                    timeout = self._due[0][0] - self.clock() if self._due else None
                    self._cond.wait(timeout)
                if self._stop:
                    return
                _, key = heapq.heappop(self._due)
                folder_root = self._folders.pop(key[4:], None) if key.startswith("dir:") else None
                cand = None if key.startswith("dir:") else self._cands.get(key)
            try:
                if folder_root is not None:
                    self.scan(folder_root, key[4:])
                elif cand is not None:
                    self._check(key, cand)
            except Exception:
                log.exception("watch.settle_error", path=key)

    def _forget(self, path: str) -> None:
        with self._cond:
            self._cands.pop(path, None)

    def _settled(self, path: str, st: os.stat_result) -> None:
        """Nothing more to do for this version of the file until it changes."""
        self._forget(path)
        self._known[path] = (st.st_size, st.st_mtime_ns)

    def _check(self, path: str, cand: _Candidate) -> None:
        now = self.clock()
        try:
            st = os.stat(path, follow_symlinks=False)
            link = stat.S_ISLNK(st.st_mode)
            if link and self._inside(cand.root, path):
                st, link = os.stat(path), False  # a link within the root: its target counts
        except FileNotFoundError:
            for job_id in self.store.skip_pending(path, now, "the file was removed before it "
                                                  "was uploaded"):
                log.info("job.vanished", job_id=job_id, path=path)
            self._forget(path)
            return
        if link:
            seen = self.store.observe(path, str(cand.root.path), st.st_size, st.st_mtime_ns, now)
            if seen.state is JobState.PENDING:
                self.store.skip(seen.job_id, [JobState.PENDING], now,
                                "it is a link to a file outside the watch folder; copy the "
                                "file itself into the folder instead")
            self._forget(path)
            return
        if self._known.get(path) == (st.st_size, st.st_mtime_ns):
            self._forget(path)
            return
        if (st.st_size, st.st_mtime_ns) != (cand.size, cand.mtime_ns):
            seen = self.store.observe(path, str(cand.root.path), st.st_size, st.st_mtime_ns, now)
            if not seen.new:
                if seen.exact:  # already queued, uploading or finished: nothing to do
                    self._settled(path, st)
                else:  # an older version is uploading; the worker re-settles the path after
                    self._forget(path)
                return
            if cand.job_id is None:
                log.info("job.seen", job_id=seen.job_id, path=path, size=st.st_size)
            cand.job_id, cand.size, cand.mtime_ns, cand.changed_at = \
                seen.job_id, st.st_size, st.st_mtime_ns, now
            with self._cond:
                self._schedule(path, now + self.settle)
            return
        if now - cand.changed_at < self.settle:
            with self._cond:
                self._schedule(path, cand.changed_at + self.settle)
            return
        self._forget(path)
        assert cand.job_id is not None
        if self._promote(path, cand, st) is not JobState.PENDING:
            self._known[path] = (st.st_size, st.st_mtime_ns)

    def _inside(self, root: WatchRoot, path: str) -> bool:
        return Path(os.path.realpath(path)).is_relative_to(os.path.realpath(root.path))

    def _promote(self, path: str, cand: _Candidate, st: os.stat_result) -> JobState:
        """Settled: queue it, hold it with a reason, or end it with a reason."""
        now = self.clock()
        job_id = cand.job_id
        assert job_id is not None
        rel = PurePath(path).relative_to(cand.root.path)
        try:
            settings = sidecar.settings_for(cand.root, rel)
        except ConfigError as exc:
            self.store.hold(job_id, f"folder settings are invalid: {exc}", now)
            log.warning("job.held", job_id=job_id, path=path, reason=str(exc))
            return JobState.PENDING
        forced = self.store.is_forced(job_id)
        try:
            try:
                info = movie.inspect(path)
            except movie.NotAMovie as exc:
                if not forced:
                    self.store.fail(job_id, [JobState.PENDING], now, str(exc))
                    log.warning("job.not_a_movie", job_id=job_id, path=path, reason=str(exc))
                    return JobState.FAILED
                info = movie.MovieInfo(None, None)  # an operator forced it through
            fp = movie.fingerprint(path, st.st_size)
        except OSError as exc:
            self.store.fail(job_id, [JobState.PENDING], now, file_error(exc).message)
            return JobState.FAILED
        taken = info.creation_time.timestamp() if info.creation_time else st.st_mtime
        taken = min(taken, now)
        local_day = datetime.fromtimestamp(taken).date()
        where = layout.place(rel, self.cfg.athletes, local_day, str(self.cfg.source))
        if where.problem:
            self.store.hold(job_id, where.problem, now)
            log.warning("job.held", job_id=job_id, path=path, reason=where.problem)
            return JobState.PENDING
        orientation = settings.camera_orientation
        if orientation == "auto":
            if info.orientation is None and not forced:
                self.store.fail(job_id, [JobState.PENDING], now,
                                "the movie has no video track")
                return JobState.FAILED
            orientation = info.orientation or "landscape"
        camera = {**settings.camera, "camera_setup_selection": settings.camera_setup_selection,
                  "camera_orientation": orientation}
        assert where.athlete_id and where.session_group_id
        ready = Ready(size=st.st_size, mtime_ns=st.st_mtime_ns, athlete_id=where.athlete_id,
                      session_group_id=where.session_group_id,
                      file_name=layout.safe_file_name(os.path.basename(path)),
                      capture_time=iso_utc(taken),
                      camera_configuration=json.dumps(camera),
                      movement_attributes=json.dumps(dict(settings.movement)),
                      fingerprint=fp)
        state = self.store.mark_ready(job_id, ready, now, self.cfg.upload.allow_duplicates)
        log.info("job.queued" if state is JobState.QUEUED else "job.skipped",
                 job_id=job_id, path=path, athlete_id=where.athlete_id)
        if state is JobState.QUEUED:
            self.on_queued()
        return state
