"""The observers' lifecycle: one watchdog observer per watch root, owned here behind one lock.

A root that disappears (an unmount, a sync tool, an admin's rm -rf) is noticed by its observer
(inotify's DELETE_SELF) or by `check()`, which the service runs every few seconds and which
compares each root's identity (device, inode). A lost root is reported; as soon as it is back
it is watched again and the intake is told to scan it. Observers of unchanged roots keep
running across a reload.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
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

from daemon import logs
from daemon.config import WatchRoot

# Without an explicit filter watchdog also delivers open/close-nowrite events, which flood the
# inotify queue on large trees (and the daemon's own reads would feed it).
EVENT_FILTER = [FileCreatedEvent, FileClosedEvent, FileMovedEvent, DirCreatedEvent,
                DirMovedEvent, DirDeletedEvent]
log = logs.get("watcher")

OnPath = Callable[[WatchRoot, str, bool, bool], None]  # root, path, is_directory, closed


class _Handler(FileSystemEventHandler):
    def __init__(self, owner: ObserverSet, root: WatchRoot):
        self.owner, self.root = owner, root

    def on_any_event(self, event: FileSystemEvent) -> None:
        path = os.fsdecode(event.dest_path if isinstance(event, FileMovedEvent | DirMovedEvent)
                           else event.src_path)
        if not path:
            return
        try:
            if isinstance(event, DirDeletedEvent):
                if path == str(self.root.path):
                    self.owner.lost_event(self.root)
                return
            # A close (IN_CLOSE_WRITE) lets a complete movie go without settling (pickup.py).
            self.owner.on_path(self.root, path, event.is_directory,
                               isinstance(event, FileClosedEvent))
        except Exception:  # an exception here would end the observer thread
            log.exception("watch.event_error", path=path)


@dataclass
class _Watch:
    root: WatchRoot
    observer: BaseObserver | None
    identity: tuple[int, int] | None
    fresh: bool = False  # not begun yet: `check_root` begins it


def _identity(root: WatchRoot) -> tuple[int, int] | None:
    try:
        st = os.stat(root.path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


class ObserverSet:
    def __init__(self, on_path: OnPath, on_lost: Callable[[WatchRoot, str], None],
                 on_back: Callable[[WatchRoot], None], poll_interval: float,
                 on_deleted: Callable[[], None] = lambda: None):
        self.on_path, self.on_lost, self.on_back = on_path, on_lost, on_back
        self.on_deleted = on_deleted
        self.poll_interval = poll_interval
        self._lock = threading.RLock()
        self._watches: dict[str, _Watch] = {}
        self._stopped = False

    def start(self, roots: Sequence[WatchRoot]) -> None:
        """Roots to watch. Nothing is looked at here: `check_root`, on the root's own thread
        (watch/lookouts.py), begins each, so a root that hangs holds up no other."""
        with self._lock:
            for root in roots:
                self._watches[str(root.path)] = _Watch(root, None, None, fresh=True)

    def lost(self) -> list[str]:
        with self._lock:
            return [p for p, w in self._watches.items() if w.observer is None and not w.fresh]

    def _begin(self, root: WatchRoot) -> _Watch:
        """Watch one root; polling where asked, or where inotify cannot (e.g. the inotify watch
        limit is reached). A root that is not there is reported lost, not fatal."""
        identity = _identity(root)
        if identity is None:
            self.on_lost(root, "the folder does not exist")
            return _Watch(root, None, None)
        errors = []
        for poll in ([True] if root.poll else [False, True]):
            observer = PollingObserver(timeout=self.poll_interval) if poll else Observer()
            try:
                observer.schedule(_Handler(self, root), str(root.path), recursive=True,
                                  event_filter=EVENT_FILTER)
                observer.start()
                return _Watch(root, observer, identity)
            except OSError as exc:
                errors.append(exc.strerror or str(exc))
                log.error("watch.cannot_watch", root=str(root.path), polling=poll,
                          reason=errors[-1])
        self.on_lost(root, f"it cannot be watched ({'; '.join(errors)})")
        return _Watch(root, None, None)

    def lost_event(self, root: WatchRoot) -> None:
        """The observer saw its root deleted. Not checked here: this runs on the observer's
        own thread, which `check()` stops; the owner runs a check soon on its own thread."""
        log.warning("watch.root_deleted", root=str(root.path))
        self.on_deleted()

    def check(self) -> None:
        """Every root, on this thread (tools and tests; the service checks each root on its
        own thread)."""
        with self._lock:
            keys = list(self._watches)
        for key in keys:
            self.check_root(key)

    def check_root(self, key: str) -> None:
        """Begin watching a root (new, or back after it was removed or replaced); restart an
        observer that died. The stat and the observer's start (which walks the tree) are made
        outside the lock: a root that hangs there holds no other root's check."""
        with self._lock:
            w = self._watches.get(key)
            if self._stopped or w is None:
                return
        identity = _identity(w.root)
        alive = w.observer is not None and w.observer.is_alive()
        if not w.fresh and alive and identity == w.identity:
            return
        if w.observer is not None:
            if not alive:
                log.error("watch.observer_died", root=key)
            _halt(w.observer)
            if identity is None:
                log.error("watch.root_lost", root=key)
                self.on_lost(w.root, "the folder was removed or unmounted")
                self._replace(key, w, _Watch(w.root, None, None))
                return
        elif identity is None and not w.fresh:
            return  # still gone
        new = self._begin(w.root)
        if self._replace(key, w, new) and new.observer is not None and not w.fresh:
            log.info("watch.root_watched", root=key)
            self.on_back(w.root)  # outside the lock: the intake scans the whole folder

    def _replace(self, key: str, old: _Watch, new: _Watch) -> bool:
        """`new` in the place of `old`, unless a reload or the stop came meanwhile."""
        with self._lock:
            if not self._stopped and self._watches.get(key) is old:
                self._watches[key] = new
                return True
        if new.observer is not None:
            _halt(new.observer)
        return False

    def reconfigure(self, roots: Sequence[WatchRoot], poll_interval: float) -> list[WatchRoot]:
        """SIGHUP: keep observers of unchanged roots; returns the roots newly watched."""
        with self._lock:
            self.poll_interval = poll_interval
            old = self._watches
            self._watches, added = {}, []
            for root in roots:
                key = str(root.path)
                w = old.pop(key, None)
                if w is not None and w.root.poll == root.poll and w.observer is not None:
                    w.root = root
                    self._watches[key] = w
                    continue
                if w is not None and w.observer is not None:
                    _halt(w.observer)
                self._watches[key] = _Watch(root, None, None, fresh=True)  # see start()
                added.append(root)
            for w in old.values():
                if w.observer is not None:
                    _halt(w.observer)
            return added

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            observers = [w.observer for w in self._watches.values() if w.observer is not None]
        for observer in observers:
            observer.stop()
        for observer in observers:
            observer.join(timeout=5)


def _halt(observer: BaseObserver) -> None:
    try:
        observer.stop()
    except Exception:  # an observer that died may not stop cleanly; it is gone either way
        log.debug("watch.observer_stop_failed")
