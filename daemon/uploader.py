"""Stream a file to a pre-signed S3 POST as multipart/form-data.

The body is built here rather than by httpx's `files=` so that we control it exactly: every
upload field as returned, in order, the file part last, a known Content-Length, the file read in
chunks (never whole), exactly `size` bytes of it, with progress and abort checks per chunk.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import httpx

from daemon.apiclient import http_error, transport_error
from daemon.bandwidth import Limiter
from daemon.errors import Kind, TransferError, Where, file_error

# Each chunk is one read and one send; the abort flag is checked between chunks, so a send
# blocked on a slow link delays a shutdown by at most CHUNK / rate.
CHUNK = 256 * 1024
SEND_BUFFER = 512 * 1024  # the kernel doubles it; enough for ~80 Mbit/s at 50 ms RTT
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


class Uploader:
    def __init__(self, stall_seconds: float, connect_timeout: float = 10.0,
                 client: httpx.Client | None = None, chunk_size: int = CHUNK,
                 limiter: Limiter | None = None):
        self.limiter = limiter
        # write/read timeouts are the stall detector: no byte moved for this long -> abort.
        timeout = httpx.Timeout(connect=connect_timeout, read=stall_seconds,
                                write=stall_seconds, pool=stall_seconds)
        # A bounded send buffer: bytes in it count as "sent" but are not at the server yet, and
        # a crash then leaves the server to finish an upload we never hear of (a duplicate).
        transport = httpx.HTTPTransport(socket_options=[
            (socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)])
        self._client = client or httpx.Client(timeout=timeout, trust_env=False,
                                              transport=transport)
        # Under a bandwidth limit, smaller chunks keep the flow smooth (about 8 a second).
        self.chunk_size = chunk_size if limiter is None or limiter.rate <= 0 else \
            min(chunk_size, max(64 * 1024, int(limiter.rate / 8)))

    def close(self) -> None:
        self._client.close()

    def upload(self, path: str, size: int, url: str, fields: Mapping[str, str], file_name: str,
               on_progress: Callable[[int], None], abort: threading.Event,
               mtime_ns: int | None = None) -> Sent:
        """POST the first `size` bytes of `path`. With `mtime_ns`, the upload is abandoned
        before its closing boundary if the file changed meanwhile, so the endpoint never
        stores a stale or mixed version (without that boundary the form is incomplete)."""
        boundary = secrets.token_hex(16).encode()
        head, tail = multipart_parts(fields, file_name, boundary)
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError as exc:
            raise file_error(exc) from None

        def body() -> Iterator[bytes]:
            yield head
            sent = 0
            buf = bytearray(self.chunk_size)
            view = memoryview(buf)
            while sent < size:
                if abort.is_set():
                    raise Aborted()
                want = min(self.chunk_size, size - sent)
                if self.limiter is not None:
                    self.limiter.take(want)
                n = os.readv(fd, [view[:want]])
                if n == 0:
                    raise TransferError(Where.FILE, Kind.CHANGED,
                                        "the file got shorter while it was being uploaded")
                sent += n
                yield bytes(view[:n])
                on_progress(sent)
            if mtime_ns is not None:
                st = os.fstat(fd)
                if (st.st_size, st.st_mtime_ns) != (size, mtime_ns):
                    raise TransferError(Where.FILE, Kind.CHANGED, CHANGED_WHILE_UPLOADING)
            yield tail

        started = time.monotonic()
        headers = {"Content-Type": f"multipart/form-data; boundary={boundary.decode()}",
                   "Content-Length": str(len(head) + size + len(tail))}
        try:
            response = self._client.post(url, content=body(), headers=headers)
        except httpx.HTTPError as exc:
            raise transport_error(exc, Where.STORAGE) from None
        except OSError as exc:
            raise file_error(exc) from None
        finally:
            # The file we read, even if its name was removed meanwhile.
            st = os.fstat(fd)
            os.close(fd)
        if not response.is_success:
            raise http_error(response, Where.STORAGE)
        etag = response.headers.get("ETag")
        return Sent(etag.strip('"') if etag else None, time.monotonic() - started, size,
                    (st.st_size, st.st_mtime_ns))
