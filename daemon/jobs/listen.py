"""The LISTEN thread of fleet mode: wakes the worker when another node queues work; idle, it
sleeps in select() with no timeout, and reconnects with backoff when the database goes away."""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
from collections.abc import Callable
from typing import Any

from daemon import logs
from daemon.jobs import engine as engine_mod

log = logs.get("fleet")
LISTEN_BACKOFF = (0.5, 30.0)


class Listener:
    """LISTEN on the jobs channel (or the channels given); call `on_wake` for every
    notification. Reconnects with
    backoff when the database goes away (and wakes once then: notices may have been missed)."""

    def __init__(self, engine: Any, on_wake: Callable[[], None],
                 channel: str | tuple[str, ...] = engine_mod.JOBS_CHANNEL):
        self.engine, self.on_wake, self.channel = engine, on_wake, channel
        self._stop = threading.Event()
        self._rsock, self._wsock = socket.socketpair()  # interrupts select() at stop
        self.connected = threading.Event()
        self.thread = threading.Thread(target=self._run, name="fleet-listen", daemon=True)

    def start(self) -> Listener:
        self.thread.start()
        return self

    def alive(self) -> bool:
        return self.thread.is_alive()

    def close(self, timeout: float = 5.0) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._wsock.send(b"\0")
        self.thread.join(timeout)
        self._rsock.close()
        self._wsock.close()

    def _run(self) -> None:
        delay, first = LISTEN_BACKOFF[0], True
        while not self._stop.is_set():
            conn = None
            try:
                conn = engine_mod.listen_connection(self.engine, self.channel)
                self.connected.set()
                if not first:
                    log.info("fleet.listening_again")
                    self.on_wake()  # whatever was queued while we were away
                first, delay = False, LISTEN_BACKOFF[0]
                self._listen(conn)
            except Exception as exc:  # the database went away, or refused us: retry
                if not self._stop.is_set():
                    log.warning("fleet.listen_failed", reason=str(exc)[:200], retry_in=delay)
            finally:
                self.connected.clear()
                if conn is not None:
                    with contextlib.suppress(Exception):
                        conn.close()
            if self._stop.wait(delay):
                return
            delay = min(LISTEN_BACKOFF[1], delay * 2)

    def _listen(self, conn: Any) -> None:
        # selectors, not select(): a descriptor numbered past 1,024 is fine (issue 30)
        with selectors.DefaultSelector() as sel:
            sel.register(conn.fileno(), selectors.EVENT_READ, "conn")
            sel.register(self._rsock, selectors.EVENT_READ, "stop")
            while not self._stop.is_set():
                ready = {key.data for key, _ in sel.select()}  # no timeout: idle is idle
                if "stop" in ready:
                    return
                self._drain(conn)

    def _drain(self, conn: Any) -> None:
        # Readable: notifications, or EOF when the server went away (notifies() raises).
        got = list(conn.notifies(timeout=0))
        if not got and conn.closed:
            raise ConnectionError("the listening connection closed")
        if got:
            self.on_wake()
