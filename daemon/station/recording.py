"""A recording on the station: any regular file under a watch folder, whatever its name, whose
size or mtime changed within `settle_seconds` (monotonic).

`[upload] while_recording` says what uploads do meanwhile: "continue" (the default), "pause"
(no capture is reserved and no upload starts; running uploads finish, since S3 drops a POST
body left idle for about 20 s) or a rate (the uploads' sum is capped at it; the lower of it and
`bandwidth_limit` wins).

The intake hands every file event here (created, closed, moved in: watch/observers.py). inotify
gives no event per write, so an event only starts the looks: the file's size and mtime, every
`look_every` seconds on one thread, until it has not changed for KEEP seconds. The service is
told when the recording it reports begins, changes or ends (`on_hold`: the notice; `on_cap`:
the limiter); the gate asks `hold()` before each claim.
"""

from __future__ import annotations

import os
import stat
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from daemon import logs
from daemon.net.bandwidth import parse_rate

log = logs.get("station")
CONTINUE, PAUSE = "continue", "pause"
Policy = str | float  # CONTINUE, PAUSE, or bytes/s
NOTICE = "recording"  # the job table's notice while "pause" holds uploads
# A file is looked at this long after its last change (a recorder that writes in bursts is
# still known when it writes again), though it counts as a recording for settle_seconds only.
KEEP = 60.0
LOOK_MOST = 1.0  # seconds between looks at most (and settle_seconds / 2 at most)
HOLD_MIN = 0.2  # the least a held claim waits before it asks again


def parse_policy(text: str) -> Policy:
    """"continue", "pause", or a rate in the syntax of bandwidth_limit ("off" or "0":
    continue)."""
    value = text.strip().lower()
    if value in (CONTINUE, PAUSE):
        return value
    try:
        rate = parse_rate(text)
    except ValueError:
        raise ValueError(f"{text!r} is not \"continue\", \"pause\" or a rate like \"2MB/s\" "
                         f"or \"512KiB/s\"") from None
    return rate if rate > 0 else CONTINUE


def cap_of(policy: Policy) -> float:
    """The rate a policy caps uploads at while a recording is written (0: none)."""
    return policy if isinstance(policy, float) else 0.0


def reason(path: str) -> str:
    """The hold in words (`status`'s hold, the waiting jobs' reason, the console)."""
    return f"waits while a recording is written: {path}"


def writing(changed: Mapping[str, float], now: float, settle: float,
            prefer: str | None = None) -> tuple[str, float] | None:
    """(the recording to report, seconds until no file counts as one) from each file's last
    change; None: nothing is being written. `prefer` (the one reported so far) stays while it is
    written, so two recorders do not make the reason flip."""
    live = {path: at for path, at in changed.items() if now - at < settle}
    if not live:
        return None
    latest = max(live.values())
    path = prefer if prefer in live else max(live, key=lambda p: (live[p], p))
    return path, latest + settle - now


@dataclass
class _File:
    size: int
    mtime_ns: int
    changed_at: float  # monotonic


def _version(path: str) -> tuple[int, int] | None:
    """(size, mtime) of a regular file; None for anything else or one that is gone."""
    try:
        st = os.stat(path, follow_symlinks=False)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns) if stat.S_ISREG(st.st_mode) else None


class Recordings:
    """The files being written under the watch folders, and what that means for uploads."""

    def __init__(self, policy: Callable[[], Policy], settle: Callable[[], float],
                 on_hold: Callable[[str | None], None], on_cap: Callable[[float], None],
                 clock: Callable[[], float] = time.monotonic):
        self.policy, self.settle, self.clock = policy, settle, clock
        self.on_hold, self.on_cap = on_hold, on_cap
        self._lock = threading.Lock()  # guards _files
        self._apply_lock = threading.Lock()  # one report at a time, in order
        self._files: dict[str, _File] = {}
        self._reported: tuple[Policy, str | None] = (CONTINUE, None)
        self._wake = threading.Event()
        self._stopped = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="recordings", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopped = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def seen(self, path: str) -> None:
        """The intake's hook: an event for `path` (the observer's thread). Costs one stat
        unless while_recording is "continue"."""
        if self.policy() == CONTINUE:
            return
        version = _version(path)
        if version is None:
            return
        now = self.clock()
        with self._lock:
            known = self._files.get(path)
            if known is not None and (known.size, known.mtime_ns) == version:
                return
            self._files[path] = _File(*version, now)
        self._wake.set()
        self.report()

    def hold(self) -> tuple[float, str | None]:
        """For the gate: (seconds to wait, why) while "pause" holds uploads, else (0, None)."""
        if self.policy() != PAUSE:
            return 0.0, None
        now = self.current()
        if now is None:
            return 0.0, None
        path, left = now
        return max(HOLD_MIN, left), reason(path)

    def current(self) -> tuple[str, float] | None:
        with self._lock:
            changed = {path: f.changed_at for path, f in self._files.items()}
        return writing(changed, self.clock(), self.settle(), self._reported[1])

    def look(self) -> None:
        """Each known file's size and mtime now; one that held for KEEP seconds, or is gone,
        is known no more."""
        with self._lock:
            paths = list(self._files)
        for path in paths:
            version = _version(path)
            now = self.clock()
            with self._lock:
                known = self._files.get(path)
                if known is None:
                    continue
                if version is None:  # gone, or no longer a regular file
                    del self._files[path]
                elif (known.size, known.mtime_ns) != version:
                    self._files[path] = _File(*version, now)
                elif now - known.changed_at >= KEEP:
                    del self._files[path]
        self.report()

    def report(self) -> None:
        """Tell the service when the recording reported (or the policy) changed."""
        with self._apply_lock:
            policy = self.policy()
            now = self.current() if policy != CONTINUE else None
            path = None if now is None else now[0]
            if (policy, path) == self._reported:
                return
            before, self._reported = self._reported[1], (policy, path)
            self.on_hold(reason(path) if policy == PAUSE and path else None)
            self.on_cap(cap_of(policy) if path else 0.0)
        if path is not None and path != before:
            log.info("station.recording", path=path, while_recording=policy)
        elif path is None and before is not None:
            log.info("station.recording_ended", path=before)

    def _run(self) -> None:
        while not self._stopped:
            with self._lock:
                idle = not self._files
            every = max(0.05, min(LOOK_MOST, self.settle() / 2))
            self._wake.wait(None if idle else every)
            self._wake.clear()
            if self._stopped:
                return
            try:
                self.look()
            except Exception:  # this thread must go on: a fault shows in the log
                log.exception("station.recording_look_failed")
