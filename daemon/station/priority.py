"""Background priority by default: nice 10 and IO best-effort level 7, set once at start
before any thread is started, so every thread inherits both however the daemon was started
(systemd, Docker, `make run`, by hand). The capture software recording on the same machine
comes first; on an idle machine a low priority costs an upload nothing.

Linux keeps both per thread: the values are set on every thread there is already (one
started before us, say by a library), and threads started later inherit them. A value the
daemon was given that is already lower in priority (`nice -n 15`, the idle IO class) is
kept. A sandbox that forbids the calls (a seccomp filter) leaves both as they were."""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
from dataclasses import dataclass

from daemon import logs

log = logs.get("station")
PRIORITIES = ("background", "normal")
BACKGROUND_NICE = 10
# ioprio: class << 13 | level (linux/ioprio.h)
IOPRIO_CLASS_SHIFT = 13
IOPRIO_CLASS_NONE, IOPRIO_CLASS_RT, IOPRIO_CLASS_BE, IOPRIO_CLASS_IDLE = 0, 1, 2, 3
IOPRIO_WHO_PROCESS = 1
BACKGROUND_IO = (IOPRIO_CLASS_BE << IOPRIO_CLASS_SHIFT) | 7
# (ioprio_set, ioprio_get) by machine; the generic table serves arm64 and riscv64
_SYSCALLS = {"x86_64": (251, 252), "i686": (289, 290), "aarch64": (30, 31),
             "riscv64": (30, 31)}


def nice_to_set(current: int) -> int | None:
    """The nice value to set, or None to leave `current` (already as low or lower)."""
    return None if current >= BACKGROUND_NICE else BACKGROUND_NICE


def io_to_set(current: int) -> int | None:
    """The IO priority to set, or None to leave `current`: the idle class and best-effort 7
    are already as low; no class (the default), real-time and other levels become BE 7."""
    klass, level = current >> IOPRIO_CLASS_SHIFT, current & ((1 << IOPRIO_CLASS_SHIFT) - 1)
    if klass == IOPRIO_CLASS_IDLE or (klass == IOPRIO_CLASS_BE and level >= 7):
        return None
    return BACKGROUND_IO


@dataclass(frozen=True)
class Applied:
    nice: int | None  # the nice value now, None when it could not be read
    io: int | None  # the ioprio value now
    refused: tuple[str, ...] = ()  # calls the system refused (a seccomp filter)


def _ioprio(call: int, *args: int) -> int:
    numbers = _SYSCALLS.get(platform.machine())
    if numbers is None:
        raise OSError("no ioprio system call known for this machine")
    libc = ctypes.CDLL(None, use_errno=True)
    result = int(libc.syscall(numbers[call], *args))
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return result


def _threads() -> list[int]:
    try:
        return [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:
        return [0]  # the calling thread


def apply(priority: str) -> Applied | None:
    """Set the background priority on every thread (None: `normal`, nothing done)."""
    if priority != "background":
        return None
    refused: list[str] = []
    for tid in _threads():
        try:
            target = nice_to_set(os.getpriority(os.PRIO_PROCESS, tid))
            if target is not None:
                os.setpriority(os.PRIO_PROCESS, tid, target)
        except OSError:
            refused.append("setpriority")
        try:
            io = io_to_set(_ioprio(1, IOPRIO_WHO_PROCESS, tid))
            if io is not None:
                _ioprio(0, IOPRIO_WHO_PROCESS, tid, io)
        except OSError:
            refused.append("ioprio_set")
    nice = io_now = None
    with contextlib.suppress(OSError):
        nice = os.getpriority(os.PRIO_PROCESS, 0)
    with contextlib.suppress(OSError):
        io_now = _ioprio(1, IOPRIO_WHO_PROCESS, 0)
    return Applied(nice, io_now, tuple(sorted(set(refused))))


def report(applied: Applied | None) -> None:
    """Logged once the daemon is ready (a refusal to start stays one plain line)."""
    if applied is not None:
        (log.warning if applied.refused else log.info)(
            "station.priority", nice=applied.nice, io=describe_io(applied.io),
            refused=list(applied.refused) or None)


def describe_io(value: int | None) -> str | None:
    if value is None:
        return None
    klass = value >> IOPRIO_CLASS_SHIFT
    names = {IOPRIO_CLASS_NONE: "none", IOPRIO_CLASS_RT: "realtime",
             IOPRIO_CLASS_BE: "best-effort", IOPRIO_CLASS_IDLE: "idle"}
    level = value & ((1 << IOPRIO_CLASS_SHIFT) - 1)
    return f"{names.get(klass, klass)}: prio {level}" if klass in (1, 2) else names.get(klass)
