"""Which upload threads are in a call on their file, and since when (issue 29 item 5).

A read of a file on a share that stopped answering (a hard-mounted NFS server gone quiet, a
frozen FUSE server) blocks in the kernel, where no abort flag or socket shutdown reaches it:
the httpx timeouts bound the network side only. The slots' supervisor (work/stuck.py) reads
these facts to tell such a thread from one that is merely slow."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class LetGo(Exception):
    """This thread was let go while stuck on its file (work/stuck.py): its job is another
    claim's now; it does nothing more (no request, no write) and ends."""


class FileCalls:
    """`with calls.on(): os.read(...)` marks the calling thread as in a call on its file;
    `since(ident)` says since when (None: it is not). `let_go(thread)` marks a thread the
    supervisor let go; `check()`, after a call, raises LetGo in such a thread (the job table's
    claim guard stops its writes anyway: this spares the requests)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self._lock = threading.Lock()
        self._since: dict[int, float] = {}  # thread ident -> when its current call began
        self._let_go: set[threading.Thread] = set()  # objects, not idents: those are reused

    @contextmanager
    def on(self) -> Iterator[None]:
        ident = threading.get_ident()
        with self._lock:
            self._since[ident] = self.clock()
        try:
            yield
        finally:
            with self._lock:
                self._since.pop(ident, None)

    def since(self, ident: int | None) -> float | None:
        with self._lock:
            return None if ident is None else self._since.get(ident)

    def let_go(self, thread: threading.Thread) -> None:
        with self._lock:
            self._let_go = {t for t in self._let_go if t.is_alive()} | {thread}

    def check(self) -> None:
        with self._lock:
            gone = threading.current_thread() in self._let_go
        if gone:
            raise LetGo()
