"""Only regular files are ever opened from a watch folder.

A FIFO named `x.mov` blocks open() until some writer comes, which is never; a device may have
side effects when opened; a socket cannot be read. Callers `lstat` first and ask `not_regular`;
`open_regular` is the belt for a file swapped between that look and the open: O_NONBLOCK makes
opening a FIFO return at once, and the opened descriptor is checked again.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import BinaryIO

from daemon.station.pagecache import random_reads

_KINDS = ((stat.S_ISFIFO, "a pipe"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISDIR, "a folder"), (stat.S_ISLNK, "a link"))


class NotRegularFile(OSError):
    """An OSError, so every caller's "cannot be read" path handles it; strerror is plain."""

    def __init__(self, reason: str):
        super().__init__(errno.EINVAL, reason)


def not_regular(mode: int) -> str | None:
    """None for a regular file, else why it is not one, in plain words."""
    if stat.S_ISREG(mode):
        return None
    kind = next((name for test, name in _KINDS if test(mode)), "something else")
    return f"not a regular file ({kind})"


def open_regular(path: str | os.PathLike[str]) -> BinaryIO:
    """Open for reading, never blocking on a FIFO; raise NotRegularFile for anything but a
    regular file. (O_NONBLOCK changes nothing for reads of regular files.) Its readers read a
    few headers and the index, never the media: no read-ahead pulls the media in."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        reason = not_regular(os.fstat(fd).st_mode)
        if reason is not None:
            raise NotRegularFile(reason)
        random_reads(fd)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
