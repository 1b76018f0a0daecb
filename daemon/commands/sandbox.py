"""`uplift-capture sandbox`: a local stand-in for the Uplift API, in the foreground (tests,
benchmarks, trying the daemon without credentials)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    sb = sub.add_parser("sandbox", help="run a local stand-in for the Uplift API")
    sb.add_argument("--host", default="127.0.0.1")
    sb.add_argument("--port", type=int, default=8765)
    sb.add_argument("--data", default="sandbox-data")
    sb.add_argument("--token", default=None, help="Bearer token to accept (default: random)")
    sb.add_argument("--upload-window", type=float, default=1800.0,
                    help="seconds an upload reservation stays valid (default 1800)")
    sb.add_argument("--fail-reservations", type=int, default=0, metavar="N",
                    help="answer the next N reservations with 503")
    sb.add_argument("--fail-uploads", type=int, default=0, metavar="N",
                    help="answer the next N uploads with 503 SlowDown")
    sb.add_argument("--upload-rate", type=float, default=None, metavar="BYTES_PER_S",
                    help="accept upload bytes no faster than this")
    sb.add_argument("--upload-url", default=None,
                    help="hand out this upload URL instead of the sandbox's own (benchmarks)")
    sb.add_argument("--latency", type=float, default=None, metavar="SECONDS",
                    help="delay every API answer by this long (a distant API)")
    sb.add_argument("--tls-cert", default=None, metavar="FILE",
                    help="serve HTTPS with this PEM certificate chain (needs --tls-key)")
    sb.add_argument("--tls-key", default=None, metavar="FILE",
                    help="the PEM private key for --tls-cert")


def run(args: argparse.Namespace) -> int:
    import signal
    import threading

    from daemon.sandbox import server

    if (args.tls_cert is None) != (args.tls_key is None):
        print("sandbox: --tls-cert and --tls-key go together", file=sys.stderr)
        return 2
    srv = server.start(Path(args.data), args.host, args.port, args.token, args.upload_window,
                       tls_cert=args.tls_cert, tls_key=args.tls_key, latency=args.latency)
    faults = srv.state.faults
    faults.reserve = [{"status": 503, "retry_after": 1}] * args.fail_reservations
    faults.upload = [{"status": 503}] * args.fail_uploads
    faults.upload_rate = args.upload_rate
    faults.upload_url = args.upload_url
    print(f"sandbox listening on {srv.base_url} (data in {Path(args.data).resolve()})",
          flush=True)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.is_set():
        stop.wait(1.0)
    srv.shutdown()
    return 0
