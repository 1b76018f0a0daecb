"""A local stand-in for the Uplift capture API and its S3 upload endpoint.

Faithful to uplift-api/create-capture.txt: POST /v1/captures checks the Bearer token and the
body, and answers with a session, an upload URL and signed upload fields; POST /s3/<bucket>
behaves like S3's browser POST. What arrives is stored under the data folder:

    <data>/endpoint.json               base_url and token of the running sandbox
    <data>/reservations.jsonl          every reservation (request body, session, expiry)
    <data>/uploads.jsonl               every accepted upload (key, size, md5, sha256, path)
    <data>/received/<session_id>/<file_name>

Admin endpoints for tests: GET /_sandbox/state, POST /_sandbox/faults (see Faults; an
unknown key is refused with 400), POST /_sandbox/token {"token": "new"} (the old token then
gets 401; endpoint.json is rewritten).

Faults, each list entry used once:

    reserve: [{"status": 503, "retry_after": 7}]    an error answer instead of a reservation
             [{"status": 502, "html": true}]         ... as an HTML proxy page
             [{"trickle": 4.0}] [{"huge": 300000000}] [{"omit": [..]}] [{"set": {..}}]
                                                      a real reservation, answered oddly
                                                      (201; see daemon.sandbox.answers)
    upload:  [{"status": 403, "code": "AccessDenied", "message": "..."}]
                                                      S3's XML error (code/message default to
                                                      SlowDown for 503, else InternalError)
             [{"status": 303, "location": "https://..."}]
                                                      any 3xx: stored as usual, then answered
                                                      with that status and Location (S3's
                                                      success_action_redirect)
             [{"cut": true, "after": 65536}]          the connection dropped mid-body
    latency: 0.05                                     every POST /v1/captures waits this long

TLS: start(..., tls_cert=PEM, tls_key=PEM) (CLI: --tls-cert/--tls-key) serves the API and the
S3 endpoint over HTTPS on the one port; base_url, upload_url and endpoint.json use https://.
The handshake runs in the connection's own thread, so a slow client never blocks accepting.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import ssl
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field, fields
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from daemon.sandbox import answers, rules
from daemon.sandbox.rules import ApiRefusal, validate_capture
from daemon.sandbox.s3post import S3Error, check_policy, iso, make_fields, read_form

BUCKET = "uplift-sandbox"
API_PREFIX = "/v1"
RECEIVE_BUFFER = 256 * 1024


@dataclass
class Faults:
    """Failures to inject, each used up as it fires. Set through POST /_sandbox/faults."""

    reserve: list[dict[str, Any]] = field(default_factory=list)  # {"status", "retry_after", "html"}
    upload: list[dict[str, Any]] = field(default_factory=list)  # same, or {"cut": true}
    upload_delay: list[float] = field(default_factory=list)  # seconds before reading a body
    upload_rate: float | None = None  # bytes per second for every upload
    upload_window: float | None = None  # overrides the window of new reservations
    upload_url: str | None = None  # send uploads to another receiver (benchmarks)
    clock_offset: float = 0.0  # the API's clock runs this many seconds from ours
    latency: float | None = None  # seconds every API request waits before its answer

    @classmethod
    def names(cls) -> set[str]:
        return {f.name for f in fields(cls)}


class SandboxState:
    def __init__(self, data_dir: Path, token: str, upload_window: float):
        self.data = data_dir
        self.token = token
        self.window = upload_window
        self.secret = secrets.token_bytes(32)
        self.faults = Faults()
        self.lock = threading.Lock()
        self.groups: dict[str, str] = {}  # session_group_id -> athlete_id
        self.sessions: dict[str, dict[str, Any]] = {}
        (data_dir / "received").mkdir(parents=True, exist_ok=True)
        self._log_reservations = data_dir / "reservations.jsonl"
        self._log_uploads = data_dir / "uploads.jsonl"
        if self._log_reservations.exists():
            for line in self._log_reservations.read_text().splitlines():
                rec = json.loads(line)
                self.groups[rec["session_group_id"]] = rec["athlete_id"]

    def take_fault(self, name: str) -> Any:
        with self.lock:
            queue = getattr(self.faults, name)
            return queue.pop(0) if queue else None

    def append(self, path: Path, record: dict[str, Any]) -> None:
        with self.lock, path.open("a") as f:
            f.write(json.dumps(record) + "\n")

    def records(self, path: Path) -> list[dict[str, Any]]:
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go in two writes: with Nagle on, a kept-alive connection's body waits
    # for the client's delayed ACK (~40 ms per answer), which no real API adds.
    disable_nagle_algorithm = True
    server: SandboxServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the daemon logs enough
        pass

    def date_time_string(self, timestamp: float | None = None) -> str:
        now = time.time() + self.state.faults.clock_offset if timestamp is None else timestamp
        return super().date_time_string(now)

    @property
    def state(self) -> SandboxState:
        return self.server.state

    def _send(self, status: int, body: bytes = b"", ctype: str = "application/json",
              headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        if body or status != 204:
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if body:
            self.wfile.write(body)

    def _json(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(data).encode(), headers=headers)

    def _fault(self, fault: dict[str, Any]) -> None:
        status = int(fault.get("status", 503))
        headers = {}
        if "retry_after" in fault:
            headers["Retry-After"] = str(fault["retry_after"])
        if fault.get("html"):
            self._send(status, b"<html><body><h1>502 Bad Gateway</h1></body></html>",
                       "text/html", headers)
        elif self.path.startswith("/s3/"):
            code = fault.get("code") or ("SlowDown" if status == 503 else "InternalError")
            message = fault.get("message") or "Please reduce your request rate."
            self._send(status, S3Error(status, code, message).xml(), "application/xml",
                       headers)
        else:
            self._json(status, {"detail": f"injected failure {status}"}, headers)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def do_GET(self) -> None:
        if self.path == "/_sandbox/state":
            st = self.state
            self._json(200, {"reservations": st.records(st._log_reservations),
                             "uploads": st.records(st._log_uploads)})
        else:
            self._json(404, {"detail": "not found"})

    def do_POST(self) -> None:
        try:
            if self.path == f"{API_PREFIX}/captures":
                self._create_capture()
            elif self.path.startswith(f"/s3/{BUCKET}"):
                self._upload()
            elif self.path == "/_sandbox/faults":
                data = json.loads(self._body() or b"{}")
                unknown = sorted(set(data) - Faults.names())
                if unknown:  # a typo would otherwise inject nothing, silently
                    self._json(400, {"detail": f"unknown faults: {', '.join(unknown)}"})
                    return
                with self.state.lock:
                    for k, v in data.items():
                        setattr(self.state.faults, k, v)
                self._json(200, {"ok": True})
            elif self.path == "/_sandbox/token":
                token = json.loads(self._body() or b"{}").get("token")
                if not isinstance(token, str) or not token:
                    self._json(400, {"detail": "token: required, a non-empty string"})
                    return
                with self.state.lock:
                    self.state.token = token
                self.server.write_endpoint()
                self._json(200, {"ok": True})
            else:
                self._body()
                self._json(404, {"detail": "not found"})
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            self.close_connection = True

    def _create_capture(self) -> None:
        raw = self._body()
        st = self.state
        if st.faults.latency:
            time.sleep(float(st.faults.latency))
        if self.headers.get("Authorization") != f"Bearer {st.token}":
            self._json(401, {"detail": "Invalid or missing API key"})
            return
        fault = st.take_fault("reserve")
        if fault and not answers.shaping(fault):
            self._fault(fault)
            return
        now = time.time() + st.faults.clock_offset
        try:
            try:
                body = json.loads(raw)
            except ValueError:
                raise ApiRefusal(400, "request body is not valid JSON") from None
            with st.lock:
                ok = validate_capture(body, st.groups, now)
                st.groups[ok["session_group_id"]] = ok["athlete_id"]
        except ApiRefusal as refusal:
            self._json(refusal.status, {"detail": refusal.detail})
            return
        session_id = str(uuid.uuid4())
        window = st.faults.upload_window or st.window
        expires = now + window
        key = f"captures/{ok['athlete_id']}/{session_id}/{ok['file_name']}"
        upload = make_fields(st.secret, BUCKET, key, expires, now)
        st.sessions[session_id] = {"key": key}
        st.append(st._log_reservations, {
            "session_id": session_id, "athlete_id": ok["athlete_id"],
            "session_group_id": ok["session_group_id"], "file_name": ok["file_name"],
            "request": body, "issued_at": iso(now), "upload_expires_at": iso(expires)})
        answer = {
            "session_id": session_id, "session_group_id": ok["session_group_id"],
            "upload_url": st.faults.upload_url or f"{self.server.root_url}/s3/{BUCKET}",
            "upload_fields": upload,
            "upload_expires_at": iso(expires), "status": "NEW"}
        if fault:
            answers.send(self, answer, fault, self.server.stopping)
        else:
            self._json(200, answer)

    def _upload(self) -> None:
        st = self.state
        length = self.headers.get("Content-Length")
        if length is None:
            self.close_connection = True
            self._send(411, S3Error(411, "MissingContentLength", "You must provide the "
                       "Content-Length HTTP header.").xml(), "application/xml")
            return
        match = re.search(r"boundary=\"?([^\";]+)\"?", self.headers.get("Content-Type", ""))
        if not match or "multipart/form-data" not in self.headers.get("Content-Type", ""):
            self._body()
            self._send(412, S3Error(412, "PreconditionFailed", "Bucket POST must be of the "
                       "enclosure-type multipart/form-data").xml(), "application/xml")
            return
        delay = st.take_fault("upload_delay")
        if delay:
            time.sleep(float(delay))
        fault = st.take_fault("upload")
        if fault and fault.get("cut"):
            # Read part of the body, then drop the connection without an answer.
            self.rfile.read(min(int(length), int(fault.get("after", 65536))))
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        rate = st.faults.upload_rate
        throttle = rules.throttle(rate) if rate else (lambda n: None)

        tmp = tempfile.NamedTemporaryFile(  # noqa: SIM115 - renamed into place, or unlinked
            dir=st.data / "received", prefix=".incoming-", delete=False)
        checked: dict[str, Any] = {}

        def on_fields(fields: dict[str, str]) -> None:
            checked["policy"] = check_policy(st.secret, BUCKET, fields, time.time())

        try:
            with tmp:
                # Throttled: small reads, so the link trickles rather than stalls.
                form = read_form(self.rfile, int(length), match.group(1).encode(), on_fields,
                                 tmp, throttle, int(min(1 << 20, max(16384, rate / 10)))
                                 if rate else 1 << 20)
            redirect = fault and 300 <= int(fault.get("status", 0)) < 400
            if fault and not redirect:
                self._fault(fault)
                return
            if "policy" not in checked:
                raise S3Error(400, "InvalidArgument", "no file in the form")
            assert form.file is not None
            key = form.fields["key"]
            session_id = key.split("/")[2]
            dest = st.data / "received" / session_id / key.rsplit("/", 1)[1]
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp.name, dest)
        except S3Error as err:
            self._send(err.status, err.xml(), "application/xml")
            return
        finally:
            if os.path.exists(tmp.name):
                os.unlink(tmp.name)
        st.append(st._log_uploads, {
            "key": key, "session_id": session_id, "size": form.file.size,
            "md5": form.file.md5, "sha256": form.file.sha256, "path": str(dest),
            "received_at": iso(time.time())})
        etag = f'"{form.file.md5}"'
        if fault and redirect:
            # S3's success_action_redirect: stored, then sent on with bucket, key and etag.
            location = fault.get("location") or "https://example.invalid/done?" + urlencode(
                {"bucket": BUCKET, "key": key, "etag": etag})
            self._send(int(fault["status"]), b"", "text/plain",
                       {"ETag": etag, "Location": location})
            return
        self._send(204, headers={"ETag": etag, "Location": f"/{BUCKET}/{key}"})


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
        return f"{'https' if self.tls else 'http'}://{host}:{port}"

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
