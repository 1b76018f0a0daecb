"""A walk of a watch folder for .mov files (the rescan's and a new folder's), with their
stat. Hidden folders are not entered, links not followed; a file gone meanwhile is left out."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator


def movies(top: str, beat: Callable[[], None] = lambda: None
           ) -> Iterator[tuple[str, os.stat_result]]:
    """`beat()` at each folder: the walk is moving (a root's lookout, watch/lookouts.py)."""
    for dirpath, dirnames, filenames in os.walk(top, followlinks=False):
        beat()
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if not name.lower().endswith(".mov"):
                continue
            path = os.path.join(dirpath, name)
            try:
                yield path, os.stat(path, follow_symlinks=False)
            except OSError:
                continue
