"""A minimal HTTP receiver that reads a request body as fast as the socket delivers it and answers
204: the upload endpoint for CPU and wall-time benchmarks, so the receiver is never what limits
the figures. It does not parse the form (the sandbox does that, far slower).

`receiver.py CERT KEY` serves HTTPS with that certificate chain (the TLS figures)."""

from __future__ import annotations

import socket
import ssl
import sys
import threading

BUF = 4 * 1024 * 1024


def handle(conn: socket.socket, tls: ssl.SSLContext | None = None) -> None:
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
            while left > 0:
                n = conn.recv_into(view, min(BUF, left))
                if not n:
                    return
                left -= n
            conn.sendall(b'HTTP/1.1 204 No Content\r\nETag: "bench"\r\nContent-Length: 0\r\n\r\n')


def main() -> None:
    tls = None
    if len(sys.argv) == 3:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(sys.argv[1], sys.argv[2])
    srv = socket.create_server(("127.0.0.1", 0))
    print(srv.getsockname()[1], flush=True)
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=handle, args=(conn, tls), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
