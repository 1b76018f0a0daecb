"""Shared watch roots (fleet mode): which roots are the fleet's, and a shared job's path at this
node's mount of the share. Node-local roots are identified by their path."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from daemon.jobs import paths
from daemon.jobs.models import Job
from daemon.jobs.store import Store
from daemon.jobs.watcher_writes import coarse


def watch_roots(watches: Iterable[Any]) -> dict[str, str]:
    """Watch identity (a shared root's name, else its path) -> this node's root path."""
    return {(w.name if w.shared else str(w.path)): str(w.path) for w in watches}


def shared_names(watches: Iterable[Any]) -> list[str]:
    return [w.name for w in watches if w.shared and w.name]


def share(root: Any) -> str | None:
    """The shared name of a watch root (its jobs are the fleet's), else None (node-local)."""
    return root.name if root.shared else None


def roots_for(store: Store, watches: Iterable[Any]) -> dict[str, str] | None:
    """For the intake's path lists: this node's paths of fleet jobs; None on SQLite (as is)."""
    return watch_roots(watches) if store.fleet else None


def localize(job: Job, watches: Iterable[Any]) -> Job:
    """A shared root's job as this node sees it: its path under this node's mount of the
    share and, if the file is the queued version (size, mtime within the 2 s that SMB/FAT
    keep), the exact mtime this node reads, so the pipeline's own checks hold unchanged."""
    for w in watches:
        if w.shared and w.name == job.watch:
            local = os.path.join(str(w.path), paths.from_db(job.rel_path))
            job.path, job.root = local, str(w.path)
            try:
                st = os.stat(local)
            except OSError:
                return job  # the pipeline's own stat reports it
            if st.st_size == job.size and abs(coarse(st.st_mtime_ns) - job.mtime_ns) <= \
                    2_000_000_000:
                job.mtime_ns = st.st_mtime_ns
            return job
    return job
