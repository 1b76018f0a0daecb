"""A local stand-in for the Uplift capture API and its S3 upload endpoint.

Faithful to uplift-api/create-capture.txt: POST /v1/captures checks the Bearer token and the
body, and answers with a session, an upload URL and signed upload fields; GET /v1/captures/{id}
and GET /v1/captures (the list) read captures back as uplift-api/captures.md documents them: a
stored capture is `processing` for a few seconds, then `completed` with the movie's frame rate,
or `error` when its file name contains "qa-fail" (sandbox/captures.py says the rule);
POST /s3/<bucket> behaves like S3's browser POST. What arrives is stored under the data folder:

    <data>/endpoint.json               base_url and token of the running sandbox
    <data>/reservations.jsonl          every reservation (request body, session, expiry)
    <data>/uploads.jsonl               every accepted upload (key, size, md5, sha256, path)
    <data>/received/<session_id>/<file_name>

Admin endpoints for tests: GET /_sandbox/state, POST /_sandbox/faults (see Faults; an
unknown key is refused with 400), POST /_sandbox/token {"token": "new"} (the old token then
gets 401; endpoint.json is rewritten), POST /_sandbox/delete {"session_id": "..."} (the
capture is deleted at Uplift: 404 from then on).

Faults, each list entry used once:

    reserve: [{"status": 503, "retry_after": 7}]    an error answer instead of a reservation
             [{"status": 502, "html": true}]         ... as an HTML proxy page
             [{"trickle": 4.0}] [{"huge": 300000000}] [{"omit": [..]}] [{"set": {..}}]
                                                      a real reservation, answered oddly
                                                      (201; see daemon.sandbox.answers)
    upload:  [{"status": 403, "code": "AccessDenied", "message": "..."}]
                                                      S3's XML error (code/message default to
                                                      SlowDown for 503, else InternalError)
             [{"status": 307}]                        S3's TemporaryRedirect (XML, Location
                                                      at a regional endpoint): nothing stored
             [{"status": 302, "location": "..."}]     any other 3xx: a captive portal's HTML
                                                      page and Location; nothing stored
    success_action_redirect: "https://..."            new reservations' fields ask for it:
                                                      a stored upload is answered 303 to that
                                                      URL with bucket, key and etag appended
             [{"cut": true, "after": 65536}]          the connection dropped mid-body (or,
                                                      "after" past the body, once it is in;
                                                      "hold": seconds before): nothing stored
             [{"stored_then_drop": true}]             stored, then dropped without an answer
    capture_read / capture_list: [{"status": 429, "retry_after": 2}]
                                                      an error answer to GET /captures/{id} /
                                                      GET /captures instead
    capture_list: [{"body": {"captures": [...]}}]     a 200 with that body, as given
    analysis_seconds: 3600                            stored captures stay processing longer
    raw_location: true                                a stored upload's 204 carries its key's
                                                      raw UTF-8 bytes in Location (S3, and the
                                                      sandbox otherwise, percent-encode it)
    capture_read: [{"status": 503, "retry_after": 2}] GET /v1/captures/{id} answers that error
             [{"capture": "awaiting_upload"}]         ... or a 200 with that capture status
                                                      (else awaiting_upload until stored, then
                                                      processing; every read in reads.jsonl)
    latency: 0.05                                     every POST /v1/captures waits this long

TLS: start(..., tls_cert=PEM, tls_key=PEM) (CLI: --tls-cert/--tls-key) serves the API and the
S3 endpoint over HTTPS on the one port; base_url, upload_url and endpoint.json use https://.
The handshake runs in the connection's own thread, so a slow client never blocks accepting.

This module listens and starts; the endpoints are in endpoints.py, faults and logs in state.py.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import ssl
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from daemon.sandbox.endpoints import API_PREFIX, BUCKET, Handler
from daemon.sandbox.state import Faults, SandboxState

__all__ = ["API_PREFIX", "BUCKET", "Faults", "Handler", "SandboxServer", "SandboxState", "reset",
           "start"]

RECEIVE_BUFFER = 256 * 1024


class SandboxServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, host: str, port: int, state: SandboxState,
                 tls: ssl.SSLContext | None = None):
        super().__init__((host, port), Handler, bind_and_activate=False)
        self.tls = tls
        self.stopping = threading.Event()  # ends trickled answers when the server stops
        # Bounded receive buffers (inherited by accepted sockets) model a WAN link: without
        # them megabytes sit in loopback buffers, and a client would think it had sent them.
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        try:
            self.server_bind()
            self.server_activate()
        except OSError:
            self.server_close()
            raise
        self.state = state

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        if self.tls is not None:
            try:
                request.settimeout(10.0)  # a client that never finishes its handshake
                request = self.tls.wrap_socket(request, server_side=True)
                request.settimeout(None)
            except OSError:  # ssl.SSLError included: a client that distrusts us, or not TLS
                self.shutdown_request(request)
                return
        super().process_request_thread(request, client_address)

    def shutdown(self) -> None:
        self.stopping.set()
        super().shutdown()

    @property
    def root_url(self) -> str:
        host, port = self.server_address[:2]
        return f"{'https' if self.tls else 'http'}://{host!s}:{port}"

    @property
    def base_url(self) -> str:
        return f"{self.root_url}{API_PREFIX}"

    def write_endpoint(self) -> None:
        """<data>/endpoint.json: base_url and token, for local trials (kept private)."""
        endpoint = self.state.data / "endpoint.json"
        tmp = endpoint.with_suffix(".tmp")
        fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"base_url": self.base_url, "token": self.state.token,
                       "pid": os.getpid()}, f)
        os.replace(tmp, endpoint)


def start(data_dir: Path, host: str = "127.0.0.1", port: int = 0, token: str | None = None,
          upload_window: float = 1800.0, tls_cert: Path | str | None = None,
          tls_key: Path | str | None = None, latency: float | None = None) -> SandboxServer:
    """Start serving in a background thread; writes <data>/endpoint.json once listening.
    With `tls_cert` (PEM chain) and `tls_key`, everything is served over HTTPS."""
    if (tls_cert is None) != (tls_key is None):
        raise ValueError("tls_cert and tls_key go together")
    tls = None
    if tls_cert is not None:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(str(tls_cert), str(tls_key))
    data_dir.mkdir(parents=True, exist_ok=True)
    state = SandboxState(data_dir, token or secrets.token_urlsafe(24), upload_window)
    state.faults.latency = latency
    server = SandboxServer(host, port, state, tls)
    threading.Thread(target=server.serve_forever, name="sandbox", daemon=True).start()
    # The token is the sandbox's own, for local trials only; still keep the file private.
    server.write_endpoint()
    return server


def reset(data_dir: Path) -> None:
    shutil.rmtree(data_dir, ignore_errors=True)
