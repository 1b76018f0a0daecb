"""The versions of files that need nothing more from the watcher (queued, uploaded, failed or
skipped), so a rescan of a large tree costs a stat per file and no query.

A station keeps every uploaded file with after_upload = "keep": the set grows with the job
table. Held as 64-bit digests in two sorted arrays (16 bytes a file, not the ~300 of a dict of
path strings and tuples), with a small dict for what changed since the last merge. A false
"known" needs two 64-bit digests to collide at once (the path's and the version's).
"""

from __future__ import annotations

import hashlib
import sys
from array import array
from bisect import bisect_left
from collections.abc import Iterable

MERGE_AT = 4096  # changes held in the dict before they are merged into the arrays


def _key(path: str) -> int:
    return int.from_bytes(hashlib.blake2b(path.encode("utf-8", "surrogateescape"),
                                          digest_size=8).digest(), "big")


def _version(size: int, mtime_ns: int) -> int:
    digest = int.from_bytes(hashlib.blake2b(f"{size}:{mtime_ns}".encode(),
                                            digest_size=8).digest(), "big")
    return digest or 1  # 0 marks a forgotten entry


class Known:
    """path -> (size, mtime_ns), asked only "is this the version we know?". Not thread-safe:
    the watcher holds its lock around every call."""

    def __init__(self, entries: Iterable[tuple[str, int, int]] = (), merge_at: int = MERGE_AT):
        self._merge_at = merge_at
        self._keys = array("Q")
        self._versions = array("Q")
        self._recent: dict[int, int] = {}  # key -> version (0: forgotten)
        self._journal = False
        # Sorted by path digest, then row order (a later row of one path is its newer version,
        # which wins); one Python int per row while building, not a tuple of objects.
        low = (1 << 64) - 1
        packed = sorted((_key(p) << 96) | (i << 64) | _version(s, m)
                        for i, (p, s, m) in enumerate(entries))
        for item in packed:
            key = item >> 96
            if self._keys and self._keys[-1] == key:
                self._versions[-1] = item & low
            else:
                self._keys.append(key)
                self._versions.append(item & low)

    @classmethod
    def journal(cls) -> Known:
        """An empty Known that keeps every change in its dict, forgets of paths it never saw
        included, so they can be replayed on a Known loaded later (`replay`)."""
        known = cls(merge_at=sys.maxsize)
        known._journal = True
        return known

    @property
    def journaling(self) -> bool:
        return self._journal

    def replay(self, journal: Known) -> None:
        """The changes a `journal()` holds, on top of this."""
        for key, version in journal._recent.items():
            self._put(key, version)

    def __len__(self) -> int:
        fresh = [k for k in self._recent if self._find(k) < 0]
        gone = [k for k, v in self._recent.items() if not v and self._find(k) >= 0]
        return len(self._keys) + sum(1 for k in fresh if self._recent[k]) - len(gone)

    def __contains__(self, path: object) -> bool:
        key = _key(str(path))
        version = self._recent.get(key)
        return bool(version) if version is not None else self._find(key) >= 0

    def matches(self, path: str, size: int, mtime_ns: int) -> bool:
        key = _key(path)
        version = self._recent.get(key)
        if version is None:
            i = self._find(key)
            version = self._versions[i] if i >= 0 else 0
        return version != 0 and version == _version(size, mtime_ns)

    def set(self, path: str, size: int, mtime_ns: int) -> None:
        self._put(_key(path), _version(size, mtime_ns))

    def forget(self, path: str) -> None:
        key = _key(path)
        if self._journal or key in self._recent or self._find(key) >= 0:
            self._put(key, 0)

    def _find(self, key: int) -> int:
        i = bisect_left(self._keys, key)
        return i if i < len(self._keys) and self._keys[i] == key else -1

    def _put(self, key: int, version: int) -> None:
        self._recent[key] = version
        if len(self._recent) >= self._merge_at:
            self._merge()

    def _merge(self) -> None:
        """One walk over the sorted arrays and the sorted changes: no copy of the whole set
        as Python objects."""
        keys, versions = array("Q"), array("Q")
        i = 0
        for key, version in sorted(self._recent.items()):
            j = bisect_left(self._keys, key, i)
            keys.extend(self._keys[i:j])
            versions.extend(self._versions[i:j])
            i = j + 1 if j < len(self._keys) and self._keys[j] == key else j
            if version:
                keys.append(key)
                versions.append(version)
        keys.extend(self._keys[i:])
        versions.extend(self._versions[i:])
        self._keys, self._versions, self._recent = keys, versions, {}
