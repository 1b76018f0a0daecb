"""The console's HTTP server: uvicorn on its own event loop in one daemon-owned thread.

uvicorn's serve() runs a main loop that wakes every 0.1 s; a service left running for months
must cost nothing when nobody looks, so we drive its startup() and shutdown() ourselves and
between them just wait on an event that stop() sets: no timers, no signal handlers (this is not
the main thread), no Date header (that is what the tick refreshed)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
import threading
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from daemon import logs

# A flood of connections that never finish their headers must not take the descriptors the
# daemon needs to open capture files (uvicorn's limit_concurrency is checked only once a
# request's headers are in): at most MAX_CONNECTIONS are held, more are closed at accept,
# unread; one that has not sent its whole request (headers and body: bodies are at most 16 KiB)
# within HEADER_TIMEOUT is closed, so a POST /login whose body never comes holds nothing.
MAX_CONNECTIONS = 100
HEADER_TIMEOUT = 10.0
_RECEIVING = (h11.IDLE, h11.SEND_BODY)
BACKLOG = 64


class GuardedH11(H11Protocol):
    """uvicorn's h11 protocol with a cap on connections and a deadline for each request."""

    _refused = False
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= MAX_CONNECTIONS:
            self._refused = True
            transport.abort()  # the descriptor is freed now; nothing was read
            return
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._refused:
            return
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state not in _RECEIVING:  # this request is all in
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._arm()  # the next request on this connection has the same deadline

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(HEADER_TIMEOUT, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.conn.their_state in _RECEIVING and not self.transport.is_closing():
            self.transport.abort()


class WebServer:
    def __init__(self, app: Any, host: str, port: int, trusted_proxies: tuple[str, ...] = ()):
        self.app, self.host, self.port = app, host, port
        self.trusted_proxies = trusted_proxies
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.log = logs.get("uplift.web")

    def _bind(self) -> list[socket.socket]:
        """One listening socket per address: `localhost` means ::1 as well as 127.0.0.1
        (browsers try ::1 first), on the same port; a host without IPv6 gets 127.0.0.1 only."""
        hosts = ["127.0.0.1", "::1"] if self.host == "localhost" else [self.host]
        socks: list[socket.socket] = []
        try:
            for host in hosts:
                port = socks[0].getsockname()[1] if socks else self.port
                try:
                    socks.append(_listen(host, port))
                except OSError as exc:
                    if not socks or exc.errno not in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
                        raise
        except OSError:
            for sock in socks:
                sock.close()
            raise
        return socks

    def start(self, timeout: float = 10.0) -> None:
        """Returns once the server is listening (`.port` is then the real port). Raises
        OSError when the address cannot be bound (in use, not ours)."""
        socks = self._bind()  # in the caller's thread: a bind error reaches the caller
        self.port = socks[0].getsockname()[1]
        self._thread = threading.Thread(target=self._run, args=(socks,), name="web",
                                        daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError(f"the web console did not start within {timeout} s")
        if self._error is not None:
            raise self._error

    def _run(self, socks: list[socket.socket]) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve(socks))
        except BaseException as exc:  # reported to start() or logged; the daemon goes on
            if not self._ready.is_set():
                self._error = exc
                self._ready.set()
            else:
                self.log.error("web.crashed", error=f"{type(exc).__name__}: {exc}")
        finally:
            for sock in socks:
                sock.close()
            loop.close()

    async def _serve(self, socks: list[socket.socket]) -> None:
        # backlog is also how many connections asyncio accepts in one go before any of them
        # meets the cap (uvicorn's 2,048 would take 2,048 descriptors at once).
        config = uvicorn.Config(self.app, lifespan="off", http=GuardedH11, backlog=BACKLOG,
                                loop="asyncio", ws="none", access_log=False, log_config=None,
                                # The login throttle counts by client address: believe
                                # X-Forwarded-For only from [web] trusted_proxies (not from
                                # loopback, where any local process could send it, nor from
                                # whatever FORWARDED_ALLOW_IPS says).
                                proxy_headers=bool(self.trusted_proxies),
                                forwarded_allow_ips=",".join(self.trusted_proxies) or "",
                                log_level="warning", date_header=False, server_header=False,
                                timeout_graceful_shutdown=2)
        config.load()
        server = uvicorn.Server(config)
        server.lifespan = config.lifespan_class(config)
        # What on_tick would have set (we never tick): no Date, no Server header.
        server.server_state.default_headers = list(config.encoded_headers)
        self._stop = asyncio.Event()
        await server.startup(sockets=socks)
        self._ready.set()
        await self._stop.wait()
        server.should_exit = True
        await server.shutdown(sockets=socks)

    def stop(self, timeout: float = 5.0) -> None:
        if self._thread is None:
            return
        loop, event = self._loop, self._stop
        if loop is not None and event is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop ended meanwhile
                loop.call_soon_threadsafe(event.set)
        self._thread.join(timeout)
        if self._thread.is_alive():
            self.log.warning("web.stop_slow", timeout=timeout)
        self._thread = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:  # ::1 only, never the IPv4 side as well
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock
