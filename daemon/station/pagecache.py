"""What the daemon's reads leave in the page cache. A capture workstation's memory belongs to
the capture software: an upload of a 20 GiB recording must not push its buffers out, nor stay
cached after it is sent. The uploader reads sequentially and drops what it sent
(`SentPages`); the movie reader's few header reads are random (`random_reads`), so the kernel
reads no further ahead than asked. Where posix_fadvise is missing (not Linux) these do
nothing."""

from __future__ import annotations

import contextlib
import os

DROP_EVERY = 8 * 1024 * 1024  # bytes sent between drops: a few syscalls per GiB


def _advise(fd: int, offset: int, length: int, advice: str) -> None:
    value = getattr(os, advice, None)
    if value is None or not hasattr(os, "posix_fadvise"):
        return
    with contextlib.suppress(OSError):  # advice only: a file system that ignores it is fine
        os.posix_fadvise(fd, offset, length, value)


def random_reads(fd: int) -> None:
    """A few small reads at scattered offsets: no read-ahead past them."""
    _advise(fd, 0, 0, "POSIX_FADV_RANDOM")


class SentPages:
    """A file being read front to back and sent: read-ahead doubled on open, and the pages
    already sent dropped as it goes (`sent`) and at the end (`close`). Pages still dirty (a
    writer's) cannot be dropped and are not: the advice only frees clean copies."""

    def __init__(self, fd: int, every: int = DROP_EVERY):
        self.fd, self.every = fd, every
        self.dropped = 0
        _advise(fd, 0, 0, "POSIX_FADV_SEQUENTIAL")

    def sent(self, upto: int) -> None:
        if upto - self.dropped >= self.every:
            _advise(self.fd, self.dropped, upto - self.dropped, "POSIX_FADV_DONTNEED")
            self.dropped = upto

    def close(self) -> None:
        """The whole file, read-ahead past the end and the movie reader's pages included."""
        _advise(self.fd, 0, 0, "POSIX_FADV_DONTNEED")
