"""Stream a file to a pre-signed S3 POST as multipart/form-data.

The body is built here rather than by httpx's `files=` so that we control it exactly: every
upload field as returned, in order, the file part last, a known Content-Length, the file read in
chunks (never whole), exactly `size` bytes of it, with progress and abort checks per chunk.

The crash window: bytes the kernel has accepted are not yet at the endpoint. If the daemon died
right after handing over the whole body, the endpoint could still complete an upload we never
recorded (a duplicate on restart). So before the closing boundary (without which the form is
incomplete and S3 stores nothing) we wait until the socket's send queue has drained (SIOCOUTQ),
bounded by the stall timeout and the abort event. The send buffer itself is left to the
kernel's autotuning, which a long fat link needs (a pinned SO_SNDBUF caps one upload at about
one buffer per round trip).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from daemon.errors import Kind, TransferError, Where, file_error
from daemon.net.api import http_error, read_capped, transport_error
from daemon.net.bandwidth import Limiter
from daemon.net.filecalls import FileCalls
from daemon.net.redirect import redirect_error, redirect_stored
from daemon.net.transport import (
    Swappable,
    current_socket,
    forget_socket,
    make_client,
    peer_spoke,
    unsent_bytes,
)
from daemon.station.pagecache import SentPages

# Each chunk is one read and one send. Large chunks halve the CPU per byte against 256 KiB
# (fewer trips through httpx/h11 and fewer syscalls: bench/RESULTS.md); on a slow link a chunk
# shrinks so one send never takes long (the write timeout bounds a whole send). Starting small
# and doubling while sends are quick finds the size without configuration. Two chunks are alive
# at once (httpcore holds the last sent while the next is read): 1 MiB, not 2, keeps an upload
# within the footprint (peak RSS 1.6 MiB lower; the CPU per GiB within noise, bench/RESULTS.md).
CHUNK = 1024 * 1024  # the most one send carries
FIRST_CHUNK = 256 * 1024
QUICK_SEND, SLOW_SEND = 0.05, 0.5  # seconds: grow below, shrink above
MAX_ERROR_ANSWER = 64 * 1024  # an S3 error document is a few hundred bytes
DRAIN_POLL_MIN, DRAIN_POLL_MAX = 0.001, 0.02  # seconds between send-queue checks
CRLF = b"\r\n"


CHANGED_WHILE_UPLOADING = ("the file changed while it was being uploaded; it will be uploaded "
                           "again once it stops changing")


class Aborted(Exception):
    """The daemon is shutting down; the job goes back to the queue."""


@dataclass(frozen=True)
class Sent:
    etag: str | None
    seconds: float
    size: int
    source: tuple[int, int]  # (size, mtime_ns) of the file we read, as the upload ended
    oddity: str | None = None  # stored, but the answer was odd: logged, never a retry


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


def _part_header(boundary: bytes, name: str, file_name: str | None = None,
                 content_type: str | None = None) -> bytes:
    disposition = f'form-data; name="{_quote(name)}"'
    if file_name is not None:
        disposition += f'; filename="{_quote(file_name)}"'
    lines = [b"--" + boundary, f"Content-Disposition: {disposition}".encode()]
    if content_type:
        lines.append(f"Content-Type: {content_type}".encode())
    return CRLF.join(lines) + CRLF + CRLF


def multipart_parts(fields: Mapping[str, str], file_name: str,
                    boundary: bytes) -> tuple[bytes, bytes]:
    """The bytes before and after the file's content."""
    head = bytearray()
    for name, value in fields.items():
        head += _part_header(boundary, name) + value.encode("utf-8") + CRLF
    content_type = fields.get("Content-Type") or "video/quicktime"
    head += _part_header(boundary, "file", file_name, content_type)
    return bytes(head), CRLF + b"--" + boundary + b"--" + CRLF


def chunk_for_rate(rate: float, most: int = CHUNK) -> int:
    """The most one send carries under a bandwidth limit of `rate` bytes/s (0: none): about
    eight sends a second keep a limited flow smooth."""
    return most if rate <= 0 else min(most, max(64 * 1024, int(rate / 8)))


def drain_poll(queued: int, rate: float) -> float:
    """When to look at the send queue next: when it should be empty at `rate` bytes/s."""
    return min(DRAIN_POLL_MAX, max(DRAIN_POLL_MIN, queued / rate if rate > 0 else DRAIN_POLL_MAX))


def _next_chunk(chunk: int, took: float, most: int) -> int:
    """The next send's size, from how long the last one took."""
    if took < QUICK_SEND:
        return min(chunk * 2, most)
    if took > SLOW_SEND:
        return max(chunk // 2, min(FIRST_CHUNK, most))
    return chunk


def _failure(exc: Exception, proxy: str | None, phase: list[str]) -> Exception:
    """What an exception of the request means; after the closing boundary went out and before
    a status line came, whatever it is, the outcome is unknown (boundary_sent)."""
    if isinstance(exc, httpx.HTTPError):
        err: Exception = transport_error(exc, Where.STORAGE, proxy)
    elif isinstance(exc, OSError):
        err = file_error(exc)
    else:
        err = exc
    if phase == ["boundary"]:
        if not isinstance(err, TransferError) or err.where is Where.FILE:
            err = TransferError(Where.STORAGE, Kind.PROTOCOL, f"the upload endpoint's answer was "
                                f"lost ({type(exc).__name__}: {str(exc)[:200]})")
        err.boundary_sent = True
    return err


class Uploader:
    """`stall_seconds`: no byte moved (or acknowledged) for this long aborts the upload.
    `proxy`, `ca_file`, `socket_options` as in `transport.make_client` (ignored with `client`).
    `drain=False` sends the closing boundary without waiting (benchmarks compare both)."""

    def __init__(self, stall_seconds: float, connect_timeout: float = 10.0,
                 client: httpx.Client | None = None, chunk_size: int = CHUNK,
                 limiter: Limiter | None = None, *, proxy: str | None = None,
                 ca_file: Path | str | None = None, socket_options: list[Any] | None = None,
                 drain: bool = True, trust: ssl.SSLContext | None = None):
        self.limiter = limiter
        self.stall_seconds, self.drain = stall_seconds, drain
        # write/read timeouts are the stall detector: no byte moved for this long -> abort.
        timeout = httpx.Timeout(connect=connect_timeout, read=stall_seconds,
                                write=stall_seconds, pool=stall_seconds)
        self._clients = Swappable(client or make_client(
            "storage", timeout, proxy, ca_file, socket_options=socket_options, trust=trust), proxy)
        # `chunk_size` is the most one send carries (sends start smaller, see CHUNK).
        self.chunk_size = chunk_for_rate(limiter.rate if limiter is not None else 0, chunk_size)
        self.drain_seconds = 0.0  # the last upload's wait for the send queue (benchmarks)
        self._lock = threading.Lock()
        self._sockets: dict[int, socket.socket] = {}  # upload thread -> its socket, for abort
        self.files = FileCalls()  # upload threads in a call on their file (work/stuck.py)

    def close(self) -> None:
        """Shutdown: every client, those replaced but still in use included."""
        self._clients.close()

    def adopt(self, other: Uploader) -> None:
        """New connection settings (a reload): uploads from now on use `other`'s client, which
        this uploader then owns (`other` is spent). Uploads in flight finish on the old client,
        stay abortable (abort_all ends every upload, whatever its client), and the old client
        is closed when the last of them ends."""
        self._clients.replace(other._clients)
        self.stall_seconds, self.chunk_size = other.stall_seconds, other.chunk_size

    def _track(self, sock: socket.socket | None) -> None:
        with self._lock:
            if sock is None:
                self._sockets.pop(threading.get_ident(), None)
            else:
                self._sockets[threading.get_ident()] = sock

    def cut(self, ident: int) -> None:
        """End one upload thread's request now (a slot declared lost: work/stuck.py), so it
        can never complete at the endpoint even if the thread returns."""
        with self._lock:
            sock = self._sockets.get(ident)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def abort_all(self) -> None:
        """Shutdown: end every upload now. Shutting its socket down wakes a send blocked on a
        stalled link at once (closing the client alone would not); the caller has set the
        abort event, so the jobs go back to the queue."""
        with self._lock:
            sockets = list(self._sockets.values())
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _wait_drained(self, abort: threading.Event,
                      report: Callable[[], None] = lambda: None) -> None:
        """Until the kernel holds no unsent or unacknowledged byte of this upload. Each check
        comes about when the queue should have drained at the rate it is draining, so the
        closing boundary follows the last acknowledgement closely (a late one leaves the
        link idle for this upload) without spinning on a slow link."""
        sock = current_socket()
        queued = unsent_bytes(sock) if sock is not None else None
        started = moved = last = time.monotonic()
        poll = DRAIN_POLL_MIN
        while queued and sock is not None and not peer_spoke(sock):
            if abort.wait(poll):
                raise Aborted()
            now_queued = unsent_bytes(sock)
            report()
            now = time.monotonic()
            if now_queued is None:
                break
            if now_queued < queued:
                rate = (queued - now_queued) / max(now - last, 1e-6)
                poll = drain_poll(now_queued, rate)
                moved = now
            else:
                poll = min(poll * 2, DRAIN_POLL_MAX)
                if now - moved >= self.stall_seconds:
                    raise TransferError(Where.STORAGE, Kind.TIMEOUT,
                                        f"the upload stalled: the endpoint acknowledged "
                                        f"nothing for {self.stall_seconds:g} s")
            queued, last = now_queued, now
        self.drain_seconds = time.monotonic() - started

    def upload(self, path: str, size: int, url: str, fields: Mapping[str, str], file_name: str,
               on_progress: Callable[[int], None], abort: threading.Event,
               mtime_ns: int | None = None, ready: Callable[[], object] = lambda: None,
               all_sent: Callable[[], object] = lambda: None) -> Sent:
        """POST the first `size` bytes of `path`. With `mtime_ns`, the upload is abandoned
        before its closing boundary if the file changed meanwhile, so the endpoint never
        stores a stale or mixed version (without that boundary the form is incomplete).
        `ready()` is called just before that boundary; what it raises abandons the upload.
        `all_sent()` is called once the boundary is written: what is left is the answer."""
        boundary = secrets.token_hex(16).encode()
        head, tail = multipart_parts(fields, file_name, boundary)
        try:
            with self.files.on():
                fd = os.open(path, os.O_RDONLY)
        except OSError as exc:
            raise file_error(exc) from None
        pages = SentPages(fd)  # sequential read-ahead; what was sent leaves the page cache

        def acked(sent: int, sock: socket.socket | None) -> int:
            """Bytes the endpoint has, not bytes handed to the kernel: with an autotuned send
            buffer megabytes can sit in it, and progress and rate must not count them."""
            queued = unsent_bytes(sock) if sock is not None else None
            return max(0, sent - queued) if queued else sent

        def body() -> Iterator[bytes]:
            yield head
            sock = current_socket()
            self._track(sock)
            sent = 0
            chunk = min(FIRST_CHUNK, self.chunk_size)
            while sent < size:
                if abort.is_set():
                    raise Aborted()
                want = min(chunk, size - sent)
                if self.limiter is not None:
                    self.limiter.take(want)
                with self.files.on():  # a hung share blocks here, beyond any abort
                    data = os.read(fd, want)
                self.files.check()  # let go meanwhile: nothing more is sent
                n = len(data)
                if n == 0:
                    raise TransferError(Where.FILE, Kind.CHANGED,
                                        "the file got shorter while it was being uploaded")
                sent += n
                pages.sent(sent)
                handed = time.monotonic()
                yield data  # returns once the kernel took all of it
                chunk = _next_chunk(chunk, time.monotonic() - handed, self.chunk_size)
                on_progress(acked(sent, sock))
            if self.drain:
                self._wait_drained(abort, lambda: on_progress(acked(sent, sock)))
            if mtime_ns is not None:
                with self.files.on():
                    st = os.fstat(fd)
                if (st.st_size, st.st_mtime_ns) != (size, mtime_ns):
                    raise TransferError(Where.FILE, Kind.CHANGED, CHANGED_WHILE_UPLOADING)
            ready()
            # Handed over from here (even if this send breaks half-way): what follows without
            # a status line is an unknown outcome (TransferError.boundary_sent).
            phase.append("boundary")
            yield tail
            # httpx asks for more only once the tail is written. From here the endpoint may
            # complete the upload: an abort must not cut it off (it would be sent again).
            self._track(None)
            all_sent()

        started = time.monotonic()
        headers = {"Content-Type": f"multipart/form-data; boundary={boundary.decode()}",
                   "Content-Length": str(len(head) + size + len(tail))}
        forget_socket()
        proxy = self._clients.proxy
        phase: list[str] = []  # "boundary" once it is handed over, "status" once a line came
        answer: httpx.Response | None = None  # its status line and headers, once they are in
        oddity = None
        try:
            with self._clients.lease() as (client, proxy), \
                    client.stream("POST", url, content=body(), headers=headers) as r:
                answer = r
                phase.append("status")
                response = read_capped(r, MAX_ERROR_ANSWER, Where.STORAGE, refuse=False)
        except Exception as exc:
            if answer is None or not stored(answer, fields):
                raise _failure(exc, proxy, phase) from None
            # The endpoint said the object is stored: whatever broke after that, sending the
            # file again would store a second copy.
            response, oddity = answer, unreadable_answer(answer, exc)
        finally:
            self._track(None)
            # The file we read, even if its name was removed meanwhile.
            with self.files.on():
                st = os.fstat(fd)
                pages.close()
                os.close(fd)
        if not stored(response, fields):
            if 300 <= response.status_code < 400:
                raise redirect_error(response, fields)
            raise http_error(response, Where.STORAGE)
        etag = response.headers.get("ETag")
        return Sent(etag.strip('"') if etag else None, time.monotonic() - started, size,
                    (st.st_size, st.st_mtime_ns), oddity or odd_headers(response))


def stored(answer: httpx.Response, fields: Mapping[str, str]) -> bool:
    """Whether the endpoint's status line and headers say the object is stored: a 2xx, or the
    success_action_redirect the signed fields asked for."""
    if 300 <= answer.status_code < 400:
        return redirect_stored(answer.headers.get("Location"), fields)
    return answer.is_success


def unreadable_answer(answer: httpx.Response, exc: Exception) -> str:
    detail = " ".join(str(exc).split())[:200]
    return (f"the upload endpoint answered HTTP {answer.status_code} (stored), but the rest of "
            f"its answer could not be read ({type(exc).__name__}{': ' + detail if detail else ''})"
            f"; recorded as uploaded")


def odd_headers(answer: httpx.Response) -> str | None:
    """S3 sends only ASCII header values (a key in Location is percent-encoded): raw bytes
    beyond it mean something else answered or rewrote the answer (a proxy, a portal)."""
    names = sorted({name.decode("latin-1") for name, value in answer.headers.raw
                    if not value.isascii()})
    if not names:
        return None
    return (f"the upload endpoint's answer (HTTP {answer.status_code}, stored) has raw "
            f"non-ASCII bytes in its {', '.join(names)} header{'s' if len(names) > 1 else ''}, "
            f"which S3 percent-encodes; something on the way may have rewritten it")
