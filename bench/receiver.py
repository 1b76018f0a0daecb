"""A minimal HTTP receiver that reads a request body as fast as the socket delivers it and answers
204: the upload endpoint for CPU and wall-time benchmarks, so the receiver is never what limits
the figures. It does not parse the form (the sandbox does that, far slower).

`receiver.py CERT KEY` serves HTTPS with that certificate chain (the TLS figures);
`receiver.py --rate BYTES_PER_S` reads all connections together at that rate, a shared uplink
(the many-small-files figure on a 1 Gbit/s link); both together are a TLS receiver slower than
the sender, whose socket buffer fills (the slow TLS figure)."""

from __future__ import annotations

import socket
import ssl
import sys
import threading
import time

BUF = 4 * 1024 * 1024
PACED_READ = 256 * 1024  # at most this much per read when paced (2 ms at 1 Gbit/s)


class Link:
    """One link's worth of bytes per second, shared by every connection: each read books the
    next free stretch of the link's time and waits for its end."""

    def __init__(self, rate: float):
        self.rate = rate
        self._lock = threading.Lock()
        self._free = time.monotonic()

    def took(self, n: int) -> None:
        with self._lock:
            now = time.monotonic()
            self._free = max(self._free, now) + n / self.rate
            until = self._free
        time.sleep(max(0.0, until - now))


def handle(conn: socket.socket, tls: ssl.SSLContext | None = None,
           link: Link | None = None, most: int = BUF) -> None:
    if tls is not None:
        try:
            conn = tls.wrap_socket(conn, server_side=True)  # the handshake in this thread
        except (OSError, ssl.SSLError):
            conn.close()
            return
    buf = bytearray(BUF)
    view = memoryview(buf)
    pending = b""
    with conn:
        while True:
            while b"\r\n\r\n" not in pending:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                pending += chunk
            head, _, rest = pending.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            left = length - len(rest)
            pending = rest[length:] if left < 0 else b""
            if link is not None and rest:  # body bytes that came with the head crossed it too
                link.took(min(length, len(rest)))
            while left > 0:
                n = conn.recv_into(view, min(most if link is None else PACED_READ, left))
                if not n:
                    return
                left -= n
                if link is not None:
                    link.took(n)
            conn.sendall(b'HTTP/1.1 204 No Content\r\nETag: "bench"\r\nContent-Length: 0\r\n\r\n')


def main() -> None:
    tls, link = None, None
    args = sys.argv[1:]
    if "--rate" in args:
        at = args.index("--rate")
        link = Link(float(args[at + 1]))
        del args[at:at + 2]
    most = BUF
    if "--read" in args:  # at most this many bytes per recv: a receiver slow on the CPU
        at = args.index("--read")
        most = int(args[at + 1])
        del args[at:at + 2]
    if len(args) == 2:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(args[0], args[1])
    srv = socket.create_server(("127.0.0.1", 0))
    print(srv.getsockname()[1], flush=True)
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=handle, args=(conn, tls, link, most), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
