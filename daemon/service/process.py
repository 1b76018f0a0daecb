"""What the daemon process sets for itself at start, before any thread exists (each thread
inherits it): one malloc arena, the open-file limit, the background priority."""

from __future__ import annotations

import contextlib
import ctypes
import resource

from daemon.station import priority

MALLOC_ARENAS = 1
M_ARENA_MAX = -8  # glibc's mallopt parameter


def limit_malloc_arenas() -> None:
    """glibc gives each thread that allocates its own heap arena, and each keeps the upload
    chunks it freed for its own reuse: with a dozen threads that took peak RSS to 80.7 MiB for
    one upload (bench). One arena serves threads that mostly wait: an upload's chunks reuse
    the blocks the last upload freed, whichever slot runs it. (Chunks are not mapped afresh
    each: a fixed M_MMAP_THRESHOLD below the chunk size cost 263,000 page faults per GiB,
    about 0.3 s of CPU, for 0.6 MiB less peak; bench/RESULTS.md.)"""
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to do
        libc = ctypes.CDLL(None)
        libc.mallopt(M_ARENA_MAX, MALLOC_ARENAS)


def raise_open_file_limit() -> None:
    """The soft open-file limit up to the hard one (systemd's default soft limit is 1,024, a
    few hundred uploads' worth of headroom at most). A sandbox that forbids it (the unit's
    SystemCallFilter; LimitNOFILE= sets both there) leaves it as it is."""
    with contextlib.suppress(OSError, ValueError):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def settle_in(priority_setting: str) -> priority.Applied | None:
    limit_malloc_arenas()
    raise_open_file_limit()
    return priority.apply(priority_setting)
