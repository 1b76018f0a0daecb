"""File paths in the job table, lossless whatever the file system gave us.

POSIX names are bytes. Python hands undecodable bytes (a Latin-1 name from an SMB share or a
Windows tool) over as lone surrogates, which no database text column can hold. Such a path is
stored as `b64:` + the base64 of its bytes (no real path starts with that: ours are absolute);
every other path is stored as it is, so the table stays readable.
"""

from __future__ import annotations

import base64
import os

PREFIX = "b64:"


def _is_clean(path: str) -> bool:
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def to_db(path: str) -> str:
    if _is_clean(path) and not path.startswith(PREFIX):
        return path
    return PREFIX + base64.urlsafe_b64encode(os.fsencode(path)).decode("ascii")


def from_db(stored: str) -> str:
    if not stored.startswith(PREFIX):
        return stored
    return os.fsdecode(base64.urlsafe_b64decode(stored[len(PREFIX):]))


def readable(path: str) -> str:
    """For people: undecodable bytes shown as U+FFFD."""
    return path if _is_clean(path) else \
        path.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
