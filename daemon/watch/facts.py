"""What `classify` needs of a settled file, read from it and beside it: the side-effect half of
the decision (sidecar settings, the movie header, the fingerprint). A reason instead of a fact
when something cannot be read, so the verdict can say it."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import PurePath

from daemon.config import ConfigError, WatchRoot
from daemon.errors import file_error, is_station_fault
from daemon.watch import movie, sidecar
from daemon.watch.classify import Facts


def read(path: str, root: WatchRoot, st: os.stat_result, now: float, forced: bool) -> Facts:
    rel = PurePath(path).relative_to(root.path)
    facts = Facts(rel=rel, size=st.st_size, mtime=st.st_mtime, mtime_ns=st.st_mtime_ns,
                  now=now, forced=forced)
    try:
        facts = _with(facts, settings=sidecar.settings_for(root, rel))
    except ConfigError as exc:
        return _with(facts, settings_problem=str(exc))
    try:
        try:
            facts = _with(facts, movie=movie.inspect(path))
        except movie.NotAMovie as exc:
            facts = _with(facts, not_a_movie=str(exc))
        return _with(facts, fingerprint=movie.fingerprint(path, st.st_size))
    except OSError as exc:
        if is_station_fault(exc):
            raise  # the intake tries again later: the file is not at fault
        return _with(facts, unreadable=file_error(exc).message)


def _with(facts: Facts, **changes: object) -> Facts:
    return replace(facts, **changes)  # type: ignore[arg-type]
