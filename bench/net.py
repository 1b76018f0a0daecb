"""Network figures for `make bench`: the sendfile(2) physical limit, a private CA for the TLS
receiver, idle CPU from schedstat, and the crash window / throughput of the upload socket with
and without the send-queue drain (and with the old pinned SO_SNDBUF)."""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

MiB = 1024 * 1024


def make_pki(folder: Path) -> tuple[Path, Path, Path]:
    """(ca.pem, cert chain, key) for 127.0.0.1, with openssl (no Python dependency)."""
    folder.mkdir(parents=True, exist_ok=True)
    ca, ca_key = folder / "ca.pem", folder / "ca.key"
    cert, key, csr = folder / "cert.pem", folder / "key.pem", folder / "req.csr"
    ext = folder / "ext.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run = lambda *a: subprocess.run(["openssl", *a], check=True, capture_output=True)  # noqa: E731
    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", str(ca_key), "-out", str(ca), "-days", "2", "-subj", "/O=Bench CA")
    run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", str(key), "-out", str(csr), "-subj", "/O=Bench receiver")
    run("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
        "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(ext))
    return ca, cert, key


def sendfile_upload(url: str, fields: dict[str, str], path: Path) -> tuple[float, float]:
    """The physical limit: the same multipart form, the file part by sendfile(2), plain HTTP.
    (wall s, CPU s of this thread, user+system)."""
    from daemon.net.upload import multipart_parts

    host_port = url.split("://", 1)[1].split("/", 1)
    host, port = host_port[0].rsplit(":", 1)
    target = "/" + (host_port[1] if len(host_port) > 1 else "")
    boundary = secrets.token_hex(16).encode()
    head, tail = multipart_parts(fields, path.name, boundary)
    size = path.stat().st_size
    request = (f"POST {target} HTTP/1.1\r\nHost: {host}:{port}\r\n"
               f"Content-Type: multipart/form-data; boundary={boundary.decode()}\r\n"
               f"Content-Length: {len(head) + size + len(tail)}\r\n\r\n").encode()
    t0, c0 = time.perf_counter(), time.thread_time()
    with socket.create_connection((host, int(port))) as sock, path.open("rb") as f:
        sock.sendall(request + head)
        sock.sendfile(f)
        sock.sendall(tail)
        answer = sock.recv(4096)
    assert b" 204 " in answer.split(b"\r\n", 1)[0], answer[:100]
    return time.perf_counter() - t0, time.thread_time() - c0


def schedstat_ns(pid: int) -> int:
    """Nanoseconds on CPU, all threads (precise; utime/stime are tick-sampled)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, ValueError, IndexError):  # a thread that ended
            total += int((task / "schedstat").read_text().split()[0])
    return total


def upload_variants(base_url: str, token: str, body: dict[str, Any], path: Path,
                    runs: int = 3) -> list[tuple[str, float, float, int]]:
    """(variant, MiB/s, CPU s/GiB, median crash window in bytes) for the upload socket:
    the old pin without drain, autotuned without drain, autotuned with the drain (today)."""
    import httpx

    from daemon.net import upload as upload_mod
    from daemon.net.api import ApiClient
    pin = [(socket.SOL_SOCKET, socket.SO_SNDBUF, 512 * 1024)]
    variants: dict[str, tuple[list[Any] | None, bool]] = {
        "SO_SNDBUF 512 KiB pinned, no drain (before)": (pin, False),
        "autotuned, no drain": (None, False),
        "autotuned + SIOCOUTQ drain (now)": (None, True),
    }
    api = ApiClient(base_url, token, httpx.Timeout(10.0))
    size = path.stat().st_size
    out = []
    for name, (opts, drains) in variants.items():
        rates, cpus, windows = [], [], []
        for _ in range(runs):
            res = api.create_capture(body)
            up = upload_mod.Uploader(stall_seconds=30, socket_options=opts)
            window: list[int] = []
            # The hook runs where the closing boundary is about to go: drain (or not), then
            # read what the endpoint has still to receive: the crash window.
            up._wait_drained = _hook(up._wait_drained, drains, window)  # type: ignore
            t0, c0 = time.perf_counter(), time.thread_time()
            up.upload(str(path), size, res.upload_url, res.upload_fields, path.name,
                      lambda n: None, threading.Event())
            wall, cpu = time.perf_counter() - t0, time.thread_time() - c0
            up.close()
            rates.append(size / MiB / wall)
            cpus.append(cpu / (size / 1024 / MiB))
            windows.append(window[-1] if window else 0)
        out.append((name, statistics.median(rates), statistics.median(cpus),
                    int(statistics.median(windows))))
    api.close()
    return out


def _hook(drain: Any, drains: bool, window: list[int]) -> Any:
    from daemon.net.transport import current_socket, unsent_bytes

    def hook(abort: threading.Event, report: Any = None) -> None:
        if drains:
            drain(abort) if report is None else drain(abort, report)
        sock = current_socket()
        window.append((unsent_bytes(sock) or 0) if sock is not None else 0)

    return hook


if __name__ == "__main__":  # `python -m bench.net PKI_DIR`: make a PKI by hand
    print(*make_pki(Path(sys.argv[1] if len(sys.argv) > 1 else os.getcwd())))
