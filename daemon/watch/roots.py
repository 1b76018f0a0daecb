"""Is a watch root there? A share that is unmounted (its bare mount point left behind), a pulled
disk or a folder moved away must not make its waiting files look deleted.

A root's identity (device, inode) is recorded the first time files are seen under it. A root
that is missing, or whose identity differs from the recorded one while jobs under it wait, is
"not there": its files are not gone, they wait; the claim leaves its jobs alone (a fleet's
other nodes take shared ones), and a person sees it as ATTENTION. A root that really moved to
new storage is accepted when its waiting files are found under it again, or by a person with
`uplift-capture roots accept PATH`.

`judge` is the decision (pure); `Roots` gathers the facts, keeps the verdicts and tells the
claim (store.absent), the attention and the intake (a root back: look again at its files).
"""

from __future__ import annotations

import os
import shlex
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from enum import StrEnum

from daemon import logs
from daemon.config import WatchRoot
from daemon.config.hints import command
from daemon.jobs.models import Job
from daemon.jobs.roots import Identity, RootTable, absent_reason, identity_of
from daemon.jobs.store import Store

log = logs.get("watcher")
# A root with only ended jobs and no record is asked of the table again this often: a `retry`
# whose poke was lost makes a job wait there without the intake seeing a file.
QUIET_FOR = 60.0


class Verdict(StrEnum):
    THERE = "there"  # the recorded root, or nothing waits that could be mistaken for gone
    RECORD = "record"  # there: record its (new) identity, its waiting files are in it
    MISSING = "missing"  # no folder at the path
    REPLACED = "replaced"  # another folder (a bare mount point) while files wait under it


NOT_THERE = (Verdict.MISSING, Verdict.REPLACED)


def judge(current: Identity | None, recorded: Identity | None, shared: bool, waiting: bool,
          found_again: Callable[[], bool]) -> Verdict:
    """`current`: the root's identity now (None: no folder); `recorded`: this node's record;
    `shared`: a fleet's shared watch; `waiting`: jobs under it wait for their files;
    `found_again`: some waiting file is at its place under the root as it is now (asked only
    when it decides)."""
    if current is None:
        return Verdict.MISSING
    if current == recorded:
        return Verdict.THERE
    if not waiting:
        return Verdict.THERE  # nothing to mistake for gone; recorded when files are seen
    if found_again():
        return Verdict.RECORD  # moved to new storage (or first seen): its files are in it
    if recorded is None and not shared:
        return Verdict.THERE  # this node made those jobs from this very folder (before 0004)
    # A share this node has never seen files in, or another folder than the recorded one.
    return Verdict.REPLACED


def watch_key(root: WatchRoot) -> str:
    """As Job.watch: a shared root's name, else the root's path."""
    return root.name if root.shared and root.name else str(root.path)


def message(root: WatchRoot, node: str, fleet: bool, config: str | None = None) -> str:
    """ATTENTION while a root is not there (`config`: named in the command it suggests)."""
    accept = command(f"roots accept {shlex.quote(str(root.path))}", config)
    if root.shared and fleet:
        return (f"share {root.name} not mounted here ({root.path} on station {node}): its files "
                f"are left to the other stations; if it really moved to new storage, run "
                f"`{accept}`")
    return (f"{absent_reason(str(root.path))}: its files wait until it is back; if it really "
            f"moved to new storage, run `{accept}`")


def hung_message(root: WatchRoot, seconds: float) -> str:
    """ATTENTION while a root does not answer (its lookout is stuck in a call on it)."""
    return (f"the watch folder {root.path} is not answering (no answer for {seconds:.0f} s: a "
            f"hung network share?): its files wait until it answers; other folders go on")


class Answering:
    """Which roots are shown not answering (only the health tick updates it): each change is
    logged once, and told to `on_change` (Roots.answering: the ATTENTION line)."""

    def __init__(self, on_change: Callable[[WatchRoot, str | None], None]):
        self.on_change = on_change
        self._hung: set[str] = set()

    def update(self, stuck: Mapping[str, tuple[WatchRoot, float]],
               watches: Iterable[WatchRoot]) -> None:
        for path, (root, seconds) in stuck.items():
            if path not in self._hung:
                log.error("watch.root_not_answering", root=path, seconds=round(seconds))
            self.on_change(root, hung_message(root, seconds))
        configured = {str(r.path): r for r in watches}
        for path in self._hung - set(stuck):
            if (back := configured.get(path)) is not None:  # (not one a reload removed)
                log.info("watch.root_answering", root=path)
                self.on_change(back, None)
        self._hung = set(stuck)


class Roots:
    """This node's verdict on each watch root. Thread-safe: the health tick, the intake and
    the upload slots all ask."""

    def __init__(self, store: Store, watches: Iterable[WatchRoot],
                 on_attention: Callable[[str, str | None], None] = lambda name, msg: None,
                 on_back: Callable[[WatchRoot], None] = lambda root: None,
                 wall: Callable[[], float] = time.time, config: str | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.store, self.table, self.clock = store, RootTable(store), clock
        self.config = config  # the config file, named in the command a message suggests
        self.on_attention, self.on_back, self.wall = on_attention, on_back, wall
        self._lock = threading.Lock()
        self._watches = list(watches)
        self._absent: dict[str, str] = {}  # watch key -> ATTENTION message
        self._hung: dict[str, str] = {}  # not answering (watch key -> ATTENTION message)
        self._recorded: set[str] = set()  # keys known to have a record (no write per file)
        # The recorded identities as last read or written here: the health tick compares each
        # root with them every few seconds without a query (idle stays idle). A person's
        # `roots accept` pokes the daemon (SQLite) or NOTIFYs every node (PostgreSQL), which
        # forget them.
        self._ids: dict[str, Identity | None] = {}
        self._gen = 0  # bumped by each record and forget: a read begun before is not cached
        # Node-local roots with no record and nothing waiting at the last look: the identity
        # they had, and until when that holds. With no job at all, until files are seen under
        # one (only this node's intake makes its jobs; a `retry` needs a job); with ended jobs
        # only, QUIET_FOR (a retry pokes, but a poke may be lost). The tick asks the table no
        # more meanwhile: a thousand done rows cost an idle daemon two scans every 5 s.
        self._quiet: dict[str, tuple[Identity, float]] = {}

    def forget(self) -> None:
        """The table may have changed under us (a poke): read the identities afresh."""
        with self._lock:
            self._ids.clear()
            self._quiet.clear()
            self._gen += 1

    def _recorded_id(self, key: str) -> Identity | None:
        with self._lock:
            if key in self._ids:
                return self._ids[key]
            gen = self._gen
        found = self.table.recorded(key)
        with self._lock:
            if self._gen == gen:  # not a read older than a record made meanwhile (seen())
                self._ids[key] = found
        return found

    def _record(self, key: str, path: str, identity: Identity, replace: bool = True,
                accepted: bool = False) -> None:
        self.table.record(key, path, identity, self.wall(), replace=replace, accepted=accepted)
        with self._lock:
            self._ids.pop(key, None)  # read back: with replace=False another may have won
            self._gen += 1

    @property
    def attention_name(self) -> str:
        # Notices are fleet-wide: each node's roots under its own name.
        return f"watch_roots@{self.store.node}" if self.store.fleet else "watch_roots"

    def reconfigure(self, watches: Iterable[WatchRoot]) -> None:
        """New roots: looked at by the owner (each on its own thread, watch/lookouts.py)."""
        with self._lock:
            self._watches = list(watches)
        self._drop_unwatched()

    def root_for(self, watch: str) -> WatchRoot | None:
        with self._lock:
            return next((w for w in self._watches if watch_key(w) == watch), None)

    def absent(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._absent)

    def seen(self, root: WatchRoot) -> None:
        """Files are seen under `root`: record its identity if none is recorded yet."""
        key = watch_key(root)
        with self._lock:
            self._quiet.pop(key, None)
            if key in self._recorded or key in self._absent:
                return
        identity = identity_of(str(root.path))
        if identity is None:
            return
        self._record(key, str(root.path), identity, replace=False)
        with self._lock:
            self._recorded.add(key)

    def there(self, root: WatchRoot) -> bool:
        """Look now (a file was not found under it): False when the root is not there."""
        return self._look(root) not in NOT_THERE

    def job_there(self, job: Job) -> bool:
        root = self.root_for(job.watch)
        return True if root is None else self.there(root)

    def check(self) -> None:
        """Every root, now (the health tick, and before the first claim)."""
        with self._lock:
            watches = list(self._watches)
        for root in watches:
            self._look(root)
        self._drop_unwatched()

    def look(self, root: WatchRoot) -> None:
        """One root, now (its lookout's thread)."""
        self._look(root)

    def answering(self, root: WatchRoot, message_: str | None) -> None:
        """`message_`: the root does not answer (a hung share), its files wait and its jobs
        are left alone; None: it answers again."""
        key = watch_key(root)
        with self._lock:
            if self._hung.get(key) == message_:
                return
            if message_ is None:
                self._hung.pop(key, None)
            else:
                self._hung[key] = message_
        self._publish()

    def _drop_unwatched(self) -> None:
        with self._lock:  # a root no longer configured is no longer absent
            keys = {watch_key(w) for w in self._watches}
            for gone in (self._absent, self._hung):
                for key in [k for k in gone if k not in keys]:
                    gone.pop(key)
        self._publish()

    def accept(self, root: WatchRoot) -> Identity | None:
        """A person says this folder is the root now (`roots accept`)."""
        identity = identity_of(str(root.path))
        if identity is not None:
            self._record(watch_key(root), str(root.path), identity, accepted=True)
        return identity

    def _look(self, root: WatchRoot) -> Verdict:
        key, path = watch_key(root), str(root.path)
        current = identity_of(path)
        recorded = self._recorded_id(key)
        local = not (root.shared and self.store.fleet)
        with self._lock:
            was = self._quiet.get(key)
            quiet = local and current is not None and was is not None and \
                was[0] == current and self.clock() < was[1]
        waiting = self.table.waiting(key) if current != recorded and not quiet else []
        if local and recorded is None and current is not None and not waiting and not quiet:
            until = self.clock() + QUIET_FOR if self.table.any_job(key) else float("inf")
            with self._lock:
                self._quiet[key] = (current, until)

        def found_again() -> bool:
            for w in waiting:
                try:
                    if os.stat(os.path.join(path, w.rel_path)).st_size == w.size:
                        return True
                except OSError:
                    continue
            return False

        verdict = judge(current, recorded, not local, bool(waiting), found_again)
        if verdict is Verdict.RECORD and current is not None:
            self._record(key, path, current)
            log.info("watch.root_recorded", root=path, dev=current[0], ino=current[1])
        self._settle(root, verdict)
        return verdict

    def _settle(self, root: WatchRoot, verdict: Verdict) -> None:
        key = watch_key(root)
        with self._lock:
            was = key in self._absent
            if verdict in NOT_THERE:
                self._absent[key] = message(root, self.store.node, self.store.fleet,
                                            self.config)
            else:
                self._absent.pop(key, None)
            if was == (verdict in NOT_THERE):
                return
        self._publish()
        if verdict in NOT_THERE:
            log.warning("watch.root_not_there", root=str(root.path), verdict=str(verdict))
            if not (root.shared and self.store.fleet):
                reason = absent_reason(str(root.path))
                held = self.table.hold_queued(key, reason, self.wall())
                if held:
                    log.info("jobs.held", job_ids=held, reason=reason)
        else:
            log.info("watch.root_back", root=str(root.path))
            self.on_back(root)

    def _publish(self) -> None:
        """The claim's exclusions and the ATTENTION line (Attention skips an unchanged one)."""
        with self._lock:
            self.store.absent = frozenset(self._absent) | frozenset(self._hung)
            text = "; ".join({**self._absent, **self._hung}.values()) or None
        self.on_attention(self.attention_name, text)
