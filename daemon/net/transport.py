"""The one place that builds HTTP clients: proxy, trust, deadlines and the socket under a request.

Proxy: an explicit `[api] proxy` is used for everything. Without it the standard HTTPS_PROXY /
HTTP_PROXY / ALL_PROXY / NO_PROXY variables are honoured (as curl and pip do). We do NOT pass
httpx `trust_env=True`: that would also let SSL_CERT_FILE *replace* the OS trust store and let a
stray ~/.netrc add credentials to requests; trust is decided here, in `ssl_context`, instead.

Trust: the operating system's store (`truststore`, as pip does), so a company CA installed on the
workstation just works; SSL_CERT_FILE and `[api] ca_file` are added on top of it.

Every connection goes through a thin network backend that (a) bounds each socket operation by a
per-thread total deadline (`deadline()`), so a server trickling a byte every few seconds cannot
hold a request for ever, and (b) remembers the socket of the last write in this thread, so the
uploader can look at the kernel's send queue while it streams a body (`current_socket()`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import socket
import ssl
import termios
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import httpcore
import httpx
import truststore
from httpx._utils import URLPattern, get_environment_proxies

ClientKind = Literal["api", "storage"]


_local = threading.local()


class TrustFileError(ValueError):
    """`ca_file` (or SSL_CERT_FILE) cannot be read as PEM certificates."""


def redact_url(url: str | httpx.URL | None) -> str:
    """`url` with any password replaced by ***, for logs and messages."""
    if url is None:
        return ""
    parts = urlsplit(str(url))
    if parts.password is None:
        return str(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def ssl_context(ca_file: Path | str | None = None) -> ssl.SSLContext:
    """The OS trust store, plus SSL_CERT_FILE and `ca_file` on top."""
    ctx = truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    env = os.environ.get("SSL_CERT_FILE")
    for name, path in (("SSL_CERT_FILE", env if env and os.path.isfile(env) else None),
                       ("[api] ca_file", ca_file)):
        if not path:
            continue
        try:
            ctx.load_verify_locations(cafile=str(path))
        except (OSError, ssl.SSLError) as exc:
            reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or exc
            raise TrustFileError(f"{name} {path}: cannot be read as PEM certificates "
                                 f"({reason})") from None
    return ctx


def proxy_for(url: str | httpx.URL, proxy: str | None) -> str | None:
    """The proxy a request to `url` goes through: the explicit one, else the environment's."""
    if proxy:
        return proxy
    target = httpx.URL(str(url))
    chosen: tuple[URLPattern, str | None] | None = None
    for key, value in get_environment_proxies().items():
        pattern = URLPattern(key)
        if pattern.matches(target) and (chosen is None or pattern < chosen[0]):
            chosen = (pattern, value)  # httpx's order: the most specific pattern wins
    return chosen[1] if chosen else None


# ---- deadlines and the socket of the current request -----------------------------------------

@contextlib.contextmanager
def deadline(seconds: float | None) -> Iterator[None]:
    """Bound every connect, read and write in this thread until the block ends."""
    previous = getattr(_local, "deadline", None)
    _local.deadline = None if seconds is None else time.monotonic() + seconds
    try:
        yield
    finally:
        _local.deadline = previous


def _bounded(timeout: float | None, exc: type[Exception]) -> float | None:
    end: float | None = getattr(_local, "deadline", None)
    if end is None:
        return timeout
    left = end - time.monotonic()
    if left <= 0:
        raise exc("the request's total deadline passed")
    return left if timeout is None else min(timeout, left)


def current_socket() -> socket.socket | None:
    """The socket this thread last wrote to through one of our clients."""
    stream = getattr(_local, "stream", None)
    return stream.get_extra_info("socket") if stream is not None else None


def forget_socket() -> None:
    _local.stream = None


def unsent_bytes(sock: socket.socket) -> int | None:
    """Bytes the kernel holds for this TCP socket: not yet sent, or sent and not acknowledged
    (SIOCOUTQ, Linux). None where the platform cannot tell."""
    try:
        buf = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
    except (OSError, ValueError, AttributeError):
        return None
    return int.from_bytes(buf, "little", signed=True)


def peer_spoke(sock: socket.socket) -> bool:
    """The peer closed, reset, or (plain TCP) answered early: waiting for it to take the rest
    of our bytes is pointless. Over TLS readable data may be just session tickets, so only a
    hang-up or error counts there."""
    events = select.POLLRDHUP | select.POLLERR | select.POLLHUP
    if not isinstance(sock, ssl.SSLSocket):
        events |= select.POLLIN
    poller = select.poll()
    try:
        poller.register(sock.fileno(), events)
    except (OSError, ValueError):
        return True
    return bool(poller.poll(0))


class _Stream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream):
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _bounded(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        _local.stream = self
        self._inner.write(buffer, _bounded(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        return _Stream(self._inner.start_tls(ssl_context, server_hostname,
                                             _bounded(timeout, httpcore.ConnectTimeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _Backend(httpcore.NetworkBackend):
    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        return _Stream(self._inner.connect_tcp(
            host, port, _bounded(timeout, httpcore.ConnectTimeout), local_address,
            socket_options))

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        return _Stream(self._inner.connect_unix_socket(
            path, _bounded(timeout, httpcore.ConnectTimeout), socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def _proxy(url: str, ctx: ssl.SSLContext) -> httpx.Proxy:
    # an https:// proxy is verified with the same trust as the servers behind it
    https = httpx.URL(url).scheme == "https"
    return httpx.Proxy(url, ssl_context=ctx if https else None)


def _transport(ctx: ssl.SSLContext, proxy: str | None, limits: httpx.Limits,
               socket_options: list[Any] | None) -> httpx.HTTPTransport:
    transport = httpx.HTTPTransport(
        verify=ctx, trust_env=False, limits=limits, socket_options=socket_options,
        proxy=_proxy(proxy, ctx) if proxy else None)
    # httpx has no public knob for the network backend; the pool reads it per new connection.
    transport._pool._network_backend = _Backend()
    return transport


def make_client(kind: ClientKind, timeout: httpx.Timeout, proxy: str | None = None,
                ca_file: Path | str | None = None, *,
                socket_options: list[Any] | None = None,
                limits: httpx.Limits | None = None,
                trust: ssl.SSLContext | None = None) -> httpx.Client:
    """A pooled keep-alive client: one for the API, one for storage uploads. `trust`: an
    `ssl_context` to share (each one holds the whole CA store, about 0.8 MiB)."""
    ctx = trust or ssl_context(ca_file)
    if limits is None:
        # A connection per thread that uses it (2 x concurrency upload threads, as many
        # reserve-ahead threads) stays open between requests; idle ones expire.
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=None,
                              keepalive_expiry=60.0 if kind == "api" else 30.0)
    mounts: dict[str, httpx.BaseTransport | None] = {}
    if proxy:
        mounts["all://"] = _transport(ctx, proxy, limits, socket_options)
    else:
        for pattern, url in get_environment_proxies().items():
            mounts[pattern] = _transport(ctx, url, limits, socket_options) if url else None
    return httpx.Client(timeout=timeout, trust_env=False, follow_redirects=False,
                        transport=_transport(ctx, None, limits, socket_options),
                        mounts=mounts)


class Swappable:
    """One client that a reload may replace (new proxy or trust) while requests are under way:
    each request leases the current client; a replaced client is closed when its last request
    ends, so nothing in flight is cut off by a reload. Shared by the API and storage clients."""

    def __init__(self, client: httpx.Client, proxy: str | None):
        self._lock = threading.Lock()
        self._client, self._proxy = client, proxy
        self._users: dict[httpx.Client, int] = {}  # client -> requests on it now

    def replace(self, other: Swappable) -> None:
        """Requests from now on use `other`'s client (`other` is spent)."""
        with self._lock:
            old = self._client
            self._client, self._proxy = other._client, other._proxy
            idle = old not in self._users
        if idle:
            old.close()

    @property
    def proxy(self) -> str | None:
        return self._proxy

    @contextlib.contextmanager
    def lease(self) -> Iterator[tuple[httpx.Client, str | None]]:
        with self._lock:
            client, proxy = self._client, self._proxy
            self._users[client] = self._users.get(client, 0) + 1
        try:
            yield client, proxy
        finally:
            with self._lock:
                self._users[client] -= 1
                last = not self._users[client]
                if last:
                    del self._users[client]
                replaced = last and client is not self._client
            if replaced:  # its last request ended: nothing else will use it
                client.close()

    def close(self) -> None:
        """Shutdown: every client, those replaced but still in use included."""
        with self._lock:
            clients = {self._client, *self._users}
        for client in clients:
            client.close()
