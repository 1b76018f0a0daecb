"""Retention ([retention]): free space on the capture disk by deleting uploaded originals, oldest
first, but only those whose capture Uplift reports `completed`. A capture that failed Uplift's
checks keeps its file (the coach needs it), as does one still processing, one never uploaded,
and one done before captures were followed (its verdict is unknown). A file is deleted only
while its size and mtime are still the uploaded version's.

It runs on the low-disk warning's thread (station/space.py), at its rate: a look costs a
statvfs per watch folder and, only when a file system is under `min_free` or `keep_days` is
set, a read of the job table. The decision is pure (`choose`); the deleter is `Retention`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from daemon import logs
from daemon.config.settings import RetentionSettings, WatchRoot
from daemon.jobs.retention import CHANGED, DELETED, MISSING, Kept, RetentionTable
from daemon.jobs.watcher_writes import COARSE_NS, coarse
from daemon.station import fsprobe
from daemon.station.space import human, parse_threshold
from daemon.watch.roots import watch_key

log = logs.get("station")
NOTICE = "retention"
COMPLETED = "completed"
DAY = 86400.0


def choose(kept: Iterable[Kept], need: int, old_before: float | None = None) -> list[Kept]:
    """Which files to delete, oldest done first: of the captures Uplift reports completed,
    every one done before `old_before` (keep_days), then more until `need` bytes are freed
    (none when `need` <= 0), and not one more."""
    ready = sorted((k for k in kept if k.analysis == COMPLETED),
                   key=lambda k: (k.finished_at, k.job_id))
    chosen: list[Kept] = []
    freed = 0
    for k in ready:
        aged = old_before is not None and k.finished_at < old_before
        if not aged and freed >= need:
            break
        chosen.append(k)
        freed += k.size
    return chosen


def same_version(k: Kept, size: int, mtime_ns: int) -> bool:
    """The file on disk is the one uploaded (a shared folder's mtime may be rounded to 2 s)."""
    if size != k.size:
        return False
    if not k.shared:
        return mtime_ns == k.mtime_ns
    return abs(coarse(mtime_ns) - coarse(k.mtime_ns)) <= COARSE_NS


def remove(k: Kept) -> str | None:
    """Delete `k`'s file if it is still the uploaded version: DELETED, CHANGED (a newer file
    took its place: left alone), MISSING; None when it could not be looked at (kept)."""
    try:
        st = os.stat(k.path)
        if not same_version(k, st.st_size, st.st_mtime_ns):
            return CHANGED
        os.unlink(k.path)
    except FileNotFoundError:
        return MISSING
    except OSError as exc:
        log.warning("retention.cannot_delete", job_id=k.job_id, path=k.path, reason=str(exc))
        return None
    return DELETED


def why_kept(kept: Sequence[Kept], waiting: int) -> str:
    """Why nothing under a file system may be deleted, in counts (stable while they are)."""
    status = [k.analysis for k in kept]
    parts = [(status.count("processing"), "still being analysed by Uplift"),
             (status.count("error"), "failed Uplift's checks (kept for the coach)"),
             (sum(s in ("gone", "unknown") for s in status), "not analysed by Uplift"),
             (status.count(None), "uploaded before captures were followed"),
             (waiting, "not uploaded yet")]
    said = [f"{n} {words}" for n, words in parts if n]
    return "; ".join(said) if said else "no uploaded files are left on it"


@dataclass(frozen=True)
class Disk:
    """One file system under watch folders: a folder for its name, and each folder's key."""
    path: str
    free: int
    total: int
    roots: dict[str, tuple[str, bool]]  # Job.watch -> (this node's root, shared)


class Retention:
    """One look (`look`) per tick of the space thread: for each watch folder's file system,
    delete what `choose` picks; say (`on_notice(NOTICE, ...)`) when a file system stays under
    the floor and nothing may be deleted. Settings and folders are asked each look (reload)."""

    def __init__(self, table: RetentionTable, settings: Callable[[], RetentionSettings],
                 watches: Callable[[], Sequence[WatchRoot]],
                 on_notice: Callable[[str, str | None], None], wall: Callable[[], float],
                 wait: float = fsprobe.WAIT):
        self.table, self.settings, self.watches = table, settings, watches
        self.on_notice, self.wall, self.wait = on_notice, wall, wait
        self._blocked: dict[str, tuple[str, str]] = {}  # path -> (why, its message)
        self._said: str | None = None

    def look(self) -> None:
        s = self.settings()
        blocked: dict[str, tuple[str, str]] = {}
        if s.on:
            floor = parse_threshold(s.min_free) if s.min_free else None
            old_before = None if s.keep_days is None else self.wall() - s.keep_days * DAY
            for disk in self._disks():
                limit = floor.limit(disk.total) if floor is not None else None
                stuck = self._free(disk, limit, old_before)
                if stuck is not None:
                    blocked[disk.path] = stuck
        self._blocked = blocked
        said = "; ".join(m for _, (_, m) in sorted(blocked.items())) or None
        if said != self._said:
            self._said = said
            self.on_notice(NOTICE, said)

    def _disks(self) -> list[Disk]:
        """The watch folders that answer, grouped by file system."""
        disks: dict[int, Disk] = {}
        for w in self.watches():
            st = fsprobe.space(str(w.path), self.wait)
            if st is None or isinstance(st, OSError):
                continue  # not answering, not there: the watch folder's notice says so
            key = (watch_key(w), (str(w.path), w.shared))
            if st.f_fsid in disks:
                disks[st.f_fsid].roots.setdefault(*key)
            else:
                disks[st.f_fsid] = Disk(str(w.path), st.f_bavail * st.f_frsize,
                                        st.f_blocks * st.f_frsize, dict([key]))
        return list(disks.values())

    def _free(self, disk: Disk, limit: int | None, old_before: float | None
              ) -> tuple[str, str] | None:
        """Delete what may go on `disk`; (why, message) when it stays under `limit`."""
        need = 0 if limit is None else limit - disk.free
        if need <= 0 and old_before is None:
            return None
        kept = self.table.kept(disk.roots, before=None if need > 0 else old_before)
        freed = 0
        while chosen := choose(kept, need - freed, old_before):
            done = {k.job_id for k in chosen}
            kept = [k for k in kept if k.job_id not in done]
            for k in chosen:
                freed += self._delete(k, limit is not None and disk.free + freed < limit)
            old_before = None  # every aged one was in the first choice
        if limit is None or disk.free + freed >= limit:
            return None
        why = why_kept(kept, self.table.waiting(disk.roots))
        earlier = self._blocked.get(disk.path)
        if earlier is not None and earlier[0] == why:
            return earlier  # the same words while nothing changes: no new notice each look
        return why, (f"low disk space on the file system of {disk.path}: "
                     f"{human(disk.free + freed)} free, under [retention] min_free "
                     f"({human(limit)}), and nothing there may be deleted: {why}")

    def _delete(self, k: Kept, for_space: bool) -> int:
        """Delete one chosen file (bounded: a share that hangs keeps it); bytes freed."""
        outcome = fsprobe.bounded("retention", k.path, lambda _: remove(k), self.wait)
        if outcome is None:
            return 0
        bound = log.bind(job_id=k.job_id, path=k.path)
        try:
            self.table.record(k.job_id, outcome, self.wall())
        except Exception as exc:  # the file's fate is logged either way
            bound.error("retention.record_failed", outcome=outcome, reason=str(exc))
        if outcome != DELETED:
            bound.info("retention.kept", reason=f"the file is {outcome} since its upload")
            return 0
        bound.info("retention.deleted", size=k.size, finished_at=k.finished_at,
                   why="min_free" if for_space else "keep_days")
        return k.size


__all__ = ["NOTICE", "Retention", "choose", "remove", "why_kept"]
