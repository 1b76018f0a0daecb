"""The intake: turns what the observers and scans see into jobs.

Events and scans only make *candidates*. The settle queue hands each back when due; the intake
stats it until its size and mtime have held for `settle_seconds` (monotonic) or its writer
closed it complete (pickup.py), then verdicts.py reads the facts (facts.py: sidecar settings,
movie header, fingerprint), asks `classify` and `resolve_twins` for a verdict and writes it to
the job table. It never talks to the network.
"""

from __future__ import annotations

import os
import stat
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePath

from sqlalchemy.exc import OperationalError

from daemon import logs
from daemon.config import Config, WatchRoot
from daemon.errors import is_station_fault
from daemon.jobs import directory, left, shares
from daemon.jobs.athletes import Directory
from daemon.jobs.models import JobState
from daemon.jobs.roots import absent_reason
from daemon.jobs.store import Store, TransitionError
from daemon.watch import layout, pickup, walk
from daemon.watch.known import Known
from daemon.watch.lookouts import LOOK, SCAN, Lookouts
from daemon.watch.observers import ObserverSet
from daemon.watch.regular import not_regular
from daemon.watch.roots import Answering, Roots
from daemon.watch.settle import SettleQueue
from daemon.watch.verdicts import Verdicts

log = logs.get("watcher")
DIR = "dir:"
DB_RETRY = (1.0, 30.0)  # backoff for a database that cannot be written (disk full)
# How long start-up waits for the first look at the roots (before the first claim): a root
# that answers by then is known there or not; one that does not is shown not answering.
FIRST_LOOK_WAIT = 5.0


@dataclass
class _Candidate:
    root: WatchRoot
    job_id: int | None = None
    size: int = -1
    mtime_ns: int = -1
    changed_at: float = 0.0  # monotonic
    db_delay: float = 0.0  # current backoff after a failed write
    closed: bool = False  # its writer closed it since the last look (watch/pickup.py)


class Watcher:
    """Intake + settle queue + observers, started and stopped in that order's reverse."""

    def __init__(self, cfg: Config, store: Store, on_queued: Callable[[], None],
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time,
                 on_db_error: Callable[[Exception | None], None] = lambda e: None,
                 on_root: Callable[[str, str | None], None] = lambda root, why: None,
                 on_root_deleted: Callable[[], None] = lambda: None,
                 on_failed: Callable[[str, str], None] = lambda path, reason: None,
                 on_roots: Callable[[str, str | None], None] | None = None,
                 directory: Directory | None = None,
                 on_file: Callable[[str], None] = lambda path: None):
        """`on_failed`: a file refused for good (notifications). `on_roots`: the watch roots'
        ATTENTION line; given it, the watcher checks that each root is there (roots.py) and
        looks again at a root that came back, else (tests, tools) every root counts as there.
        `directory`: links made at a station (jobs/athletes.py). `on_file`: every file event."""
        self.cfg, self.store, self.on_queued = cfg, store, on_queued
        self.clock, self.wall = clock, wall
        self.on_db_error, self.on_root = on_db_error, on_root
        self._lock = threading.Lock()  # guards _cands, _folders and _known
        # Versions of files needing nothing more (watch/known.py); until the first rescan
        # loads them from the table, a journal of what the intake learns, replayed on top.
        self._known = Known.journal()
        self._load_lock = threading.Lock()
        self._cands: dict[str, _Candidate] = {}
        self._folders: dict[str, WatchRoot] = {}
        self.on_failed, self.on_file = on_failed, on_file
        self.roots = None if on_roots is None else Roots(
            store, cfg.watches, on_attention=on_roots, on_back=self.root_there,
            config=str(cfg.source))
        self.directory = directory
        self.queue = SettleQueue(self._due, clock)
        self.verdicts = Verdicts(store, wall, on_queued, on_failed, self.queue.schedule,
                                 self._root_absent, self.resettle)
        self.observers = ObserverSet(self._event, self._root_lost, self._root_back,
                                     cfg.watching.poll_interval, on_root_deleted)
        self.observers.start(cfg.watches)
        # Every look at a root's file system, on that root's own thread (watch/lookouts.py).
        self.lookouts = Lookouts(self._lookout, cfg.watches, clock)
        self.answering = Answering(self.roots.answering if self.roots is not None
                                   else lambda root, why: None)

    @property
    def settle(self) -> float:
        return self.cfg.upload.settle_seconds

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self, scan: bool = True, look: bool = True) -> None:
        """Observe first, then scan, so nothing that lands in between is missed. `scan=False`:
        the owner asks for the first `rescan()` on another thread (the service: its
        scheduler), so a large tree does not hold up start-up; events are seen meanwhile.
        That rescan first loads the known versions: until then an event costs a lookup in the
        table."""
        self.queue.start()
        if look:  # (the service looked already, before its first claim)
            self.check_roots()
        if scan:
            self.rescan()
        log.info("watch.started", roots=[str(r.path) for r in self.cfg.watches])

    def _load_known(self) -> None:
        """Every version that needs nothing more (a station's uploads for years: 50,000 rows
        take about 0.2 s), read once. What the intake learnt meanwhile is newer: it stays."""
        known = Known(self.store.known_versions(shares.roots_for(self.store, self.cfg.watches)))
        with self._lock:
            known.replay(self._known)
            self._known = known

    def rescan(self, wait: bool = True) -> None:
        """Find what events missed; look again at held files (or ones put back by `retry`).
        Each root is walked on its own thread; `wait=False`: not waited for (the service:
        a root that hangs must hold up no thread of its own)."""
        with self._load_lock:  # the first rescan loads them; one at a time does
            with self._lock:
                loaded = not self._known.journaling
            if not loaded:
                self._load_known()
        self.pending_again()
        self.lookouts.ask(SCAN, wait=None if wait else 0.0)

    def _lookout(self, root: WatchRoot, task: str, beat: Callable[[], None]) -> None:
        """What a root's lookout does (on its thread): LOOK is the observer's and the roots'
        check, SCAN a walk of the whole tree."""
        path = str(root.path)
        if task == LOOK:
            self.observers.check_root(path)
            if self.roots is not None:
                self.roots.look(root)
        elif path not in self.observers.lost():
            self.scan(root, path, beat)

    def look(self) -> None:
        """The health tick: each root looked at on its own thread, not waited for. A root
        whose look (or walk) has not moved for a while is shown not answering; a lookout
        that died is started afresh."""
        self.lookouts.revive()
        self.answering.update(self.lookouts.stuck(), self.cfg.watches)
        self.lookouts.ask(LOOK)

    def athletes(self) -> Mapping[str, str]:
        """The config's [athletes] over the table's links (the config wins)."""
        if self.directory is None:
            return self.cfg.athletes
        return directory.mapping(self.cfg.athletes, self.directory.links())

    def pending_again(self) -> None:
        if self.directory is not None:  # a link may be why we look again: read it afresh
            self.directory.forget()
        for path in self.store.pending_paths(shares.roots_for(self.store, self.cfg.watches)):
            self.resettle(path)  # `retry --force` may bring back a version we knew

    def reconfigure(self, cfg: Config) -> None:
        """SIGHUP: new roots, athletes and defaults. Held files are looked at again."""
        self.cfg = cfg
        roots = {r.path: r for r in cfg.watches}
        with self._lock:  # candidates keep their root objects: point them at the new ones
            for cand in self._cands.values():
                cand.root = roots.get(cand.root.path, cand.root)
        self.observers.reconfigure(cfg.watches, cfg.watching.poll_interval)
        if self.roots is not None:
            self.roots.reconfigure(cfg.watches)
        self.lookouts.set_roots(cfg.watches)
        self.lookouts.ask(LOOK)
        self.rescan(wait=False)

    def check_roots(self, wait: float = FIRST_LOOK_WAIT) -> None:
        """Before the first claim: each root watched and known there or not (watch/roots.py),
        waited for `wait` seconds at most."""
        if not self.lookouts.ask(LOOK, wait=wait):
            self.look()  # too long already: what did not answer is shown so now

    def root_there(self, root: WatchRoot) -> None:
        """A watch folder is there again: its waiting files are looked at again."""
        self.pending_again()
        self.lookouts.ask(SCAN, [str(root.path)])  # walked on its own thread

    def stop(self) -> None:
        self.lookouts.stop()
        self.observers.stop()
        self.queue.stop()

    def root_of(self, path: str) -> WatchRoot | None:
        for root in self.cfg.watches:
            if PurePath(path).is_relative_to(root.path):
                return root
        return None

    def _root_lost(self, root: WatchRoot, why: str) -> None:
        self.on_root(str(root.path), f"the watch folder {root.path} cannot be watched: {why}; "
                                     f"files in it wait until it is back")

    def _root_back(self, root: WatchRoot) -> None:
        self.on_root(str(root.path), None)
        self.lookouts.ask(SCAN, [str(root.path)])

    # ---- intake (any thread) ---------------------------------------------------------------

    def _event(self, root: WatchRoot, path: str, is_dir: bool, closed: bool = False) -> None:
        if is_dir:
            self.folder_arrived(root, path)
        else:
            self.on_file(path)  # any file: a recording? (station/recording.py)
            self.candidate(root, path, closed=closed)

    def candidate(self, root: WatchRoot, path: str, delay: float = 0.0,
                  closed: bool = False) -> None:
        rel = PurePath(path).relative_to(root.path)
        if not layout.is_candidate(rel):
            return
        with self._lock:
            cand = self._cands.get(path)
            if cand is None:
                cand = self._cands[path] = _Candidate(root)
            cand.closed = cand.closed or (closed and not root.poll)
        self.queue.schedule(path, delay)

    def resettle(self, path: str) -> None:
        """Look at `path` afresh: its job is pending again, or ended because the file left
        the path (jobs/left.py). The version known there is no longer one needing nothing."""
        with self._lock:
            self._known.forget(path)
        root = self.root_of(path)
        if root is not None:
            self.candidate(root, path)

    def folder_arrived(self, root: WatchRoot, path: str) -> None:
        """A folder created or moved in: its files may have no events of their own. Walk it now,
        and again once it has had time to fill (cp -r writes files before we watch them)."""
        if layout.is_ignored_dir(PurePath(path).relative_to(root.path)):
            return
        self.scan(root, path)
        with self._lock:
            self._folders[path] = root
        self.queue.schedule(DIR + path, self.settle)

    def scan(self, root: WatchRoot, top: str, beat: Callable[[], None] = lambda: None) -> int:
        """Candidates for the .mov files under `top` that are not known."""
        found = 0
        for path, st in walk.movies(top, beat):
            with self._lock:
                known = self._known.matches(path, st.st_size, st.st_mtime_ns)
            if not known:
                self.candidate(root, path)
                found += 1
        return found

    # ---- the settle thread -----------------------------------------------------------------

    def _due(self, key: str) -> None:
        if key.startswith(DIR):
            with self._lock:
                root = self._folders.pop(key[len(DIR):], None)
            if root is not None:
                self.scan(root, key[len(DIR):])
            return
        with self._lock:
            cand = self._cands.get(key)
        if cand is None:
            return
        try:
            self._check(key, cand)
        except TransitionError:  # a shared file another node settled first: it is queued
            self._forget(key)
            return
        except (OperationalError, OSError) as exc:
            # The job table cannot be written (disk full, locked too long), or the station ran
            # out of descriptors: keep the candidate and try again later; nothing is lost, the
            # service shows why.
            if isinstance(exc, OSError) and not is_station_fault(exc):
                raise
            cand.db_delay = min(DB_RETRY[1], max(DB_RETRY[0], cand.db_delay * 2))
            self.on_db_error(exc)
            self.queue.schedule(key, cand.db_delay)
            return
        cand.db_delay = 0.0

    def _forget(self, path: str, version: tuple[int, int] | None = None) -> None:
        with self._lock:
            self._cands.pop(path, None)
            if version is not None:
                self._known.set(path, *version)

    def _check(self, path: str, cand: _Candidate) -> None:
        now = self.clock()
        try:
            st = os.stat(path, follow_symlinks=False)
            link = stat.S_ISLNK(st.st_mode)
            if link and self._inside(cand.root, path):
                st, link = os.stat(path), False  # a link within the root: its target counts
        except FileNotFoundError:
            if not self._root_there(cand.root):  # not gone: its folder dropped out; it waits
                if not cand.root.shared or not self.store.fleet:  # (shared: other nodes')
                    self.store.hold_pending(path, self.wall(), absent_reason(str(
                        cand.root.path)), str(cand.root.path), shares.share(cand.root))
                self._forget(path)
                return
            for job_id in self.store.skip_pending(path, self.wall(), left.REMOVED,
                                                  str(cand.root.path), shares.share(cand.root)):
                log.info("job.vanished", job_id=job_id, path=path)
            self._forget(path)
            return
        if not link and (why := not_regular(st.st_mode)) is not None:
            self.verdicts.not_regular(path, cand.root, why)
            self._forget(path, (st.st_size, st.st_mtime_ns))  # not logged again each rescan
            return
        version = (st.st_size, st.st_mtime_ns)
        if self.roots is not None:
            self.roots.seen(cand.root)  # files seen under it: its identity is recorded once
        if link:
            seen = self.store.observe(path, str(cand.root.path), *version, self.wall(),
                                      shares.share(cand.root))
            if seen.state is JobState.PENDING:
                self.store.skip(seen.job_id, [JobState.PENDING], self.wall(),
                                "it is a link to a file outside the watch folder; copy the "
                                "file itself into the folder instead")
            self._forget(path)
            return
        with self._lock:
            if self._known.matches(path, *version):
                self._cands.pop(path, None)
                return
        if version != (cand.size, cand.mtime_ns):
            seen = self.store.observe(path, str(cand.root.path), *version, self.wall(),
                                      shares.share(cand.root))
            if not seen.new:
                # already queued, uploading or finished: nothing to do; or an older version is
                # uploading and the worker re-settles the path after it
                self._forget(path, version if seen.exact else None)
                return
            if cand.job_id is None:
                log.info("job.seen", job_id=seen.job_id, path=path, size=st.st_size,
                         **({"earlier_job": seen.earlier} if seen.earlier else {}))
            cand.job_id, cand.size, cand.mtime_ns, cand.changed_at = \
                seen.job_id, st.st_size, st.st_mtime_ns, now
            if not self._closed_complete(path, cand, version):
                self.queue.schedule(path, self.settle)
                return
        elif now - cand.changed_at < self.settle and \
                not self._closed_complete(path, cand, version):
            self.queue.schedule(path, cand.changed_at + self.settle - now)
            return
        assert cand.job_id is not None
        state = self.verdicts.promote(self.cfg, self.athletes(), path, cand.root,
                                      cand.job_id, st)
        if state is None:
            return  # waits for a twin's upload; its recheck is scheduled
        if state is JobState.PENDING:
            self._forget(path)
        else:
            self._forget(path, version)

    def _closed_complete(self, path: str, cand: _Candidate, version: tuple[int, int]) -> bool:
        """Its writer closed it and its movie is complete: it goes now, not after settle.
        The close is used up here: a file closed incomplete waits for its next close."""
        with self._lock:
            closed, cand.closed = cand.closed, False
        if not closed:
            return False
        facts = pickup.look(path, version, events=not cand.root.poll)
        verdict = pickup.decide(facts)
        if isinstance(verdict, pickup.Wait):
            if not facts.steady:
                # It changed since this look began: the close was of a newer version, which
                # the check its close scheduled looks at. Keep the close for that check.
                with self._lock:
                    cand.closed = True
            log.debug("watch.pickup_waits", path=path, reason=verdict.reason)
            return False
        return True

    def _root_there(self, root: WatchRoot) -> bool:
        return self.roots is None or self.roots.there(root)

    def _root_absent(self, path: str) -> bool:
        """Is the watch folder of `path` known and not there (an unmounted share)?"""
        root = self.root_of(path)
        return root is not None and not self._root_there(root)

    def _inside(self, root: WatchRoot, path: str) -> bool:
        return Path(os.path.realpath(path)).is_relative_to(os.path.realpath(root.path))
