"""The sandbox's endpoints, one request handler: POST /v1/captures (the Uplift API's reservation),
GET /v1/captures/{id} and /v1/captures (captures.py), POST /s3/<bucket> (S3's browser POST upload),
and the /_sandbox admin endpoints tests use to read state, inject faults and change the token.
Faults are taken from the state as requests arrive.
"""

from __future__ import annotations

import json
import os
import re
import socket
import ssl
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler
from typing import Any, BinaryIO, Protocol, cast
from urllib.parse import quote, unquote

from daemon.sandbox import answers, captures, rules
from daemon.sandbox.rules import ApiRefusal, validate_capture
from daemon.sandbox.s3post import (
    S3Error,
    check_policy,
    iso,
    make_fields,
    read_form,
    redirect_location,
)
from daemon.sandbox.state import Faults, SandboxState

BUCKET = "uplift-sandbox"
API_PREFIX = "/v1"


class Serving(Protocol):
    """What the handler needs of its server (server.py's SandboxServer)."""
    state: SandboxState
    stopping: threading.Event

    @property
    def root_url(self) -> str: ...

    def write_endpoint(self) -> None: ...


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go in two writes: with Nagle on, a kept-alive connection's body waits
    # for the client's delayed ACK (~40 ms per answer), which no real API adds.
    disable_nagle_algorithm = True
    server: Serving  # type: ignore[assignment]  # narrower than socketserver's

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
        if 300 <= status < 400:
            self._redirect(status, fault.get("location"))
        elif fault.get("html"):
            self._send(status, b"<html><body><h1>502 Bad Gateway</h1></body></html>",
                       "text/html", headers)
        elif self.path.startswith("/s3/"):
            code = fault.get("code") or ("SlowDown" if status == 503 else "InternalError")
            message = fault.get("message") or "Please reduce your request rate."
            self._send(status, S3Error(status, code, message).xml(), "application/xml",
                       headers)
        else:
            self._json(status, {"detail": f"injected failure {status}"}, headers)

    def _redirect(self, status: int, location: str | None) -> None:
        """A redirect that stored nothing. 307 on an upload is S3's TemporaryRedirect (the
        bucket answers at another endpoint for now: its XML names it); any other is what a
        proxy or captive portal sends, an HTML page pointing at its own login."""
        if status == 307 and self.path.startswith("/s3/"):
            endpoint = f"{BUCKET}.s3-us-west-2.amazonaws.com"
            err = S3Error(307, "TemporaryRedirect", "Please re-send this request to the "
                          "specified temporary endpoint. Continue to use the original request "
                          "endpoint for future requests.")
            self._send(307, err.xml(Endpoint=endpoint, Bucket=BUCKET), "application/xml",
                       {"Location": location or f"https://{endpoint}/"})
            return
        self._send(status, b"<html><head><title>Sign in to the network</title></head><body>"
                           b"<a href=\"http://portal.invalid/login\">Sign in</a></body></html>",
                   "text/html", {"Location": location or "http://portal.invalid/login"})

    def _drop(self) -> None:
        """End the connection without an answer."""
        self.connection.shutdown(socket.SHUT_RDWR)
        self.close_connection = True

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def do_GET(self) -> None:
        try:
            if self.path == "/_sandbox/state":
                st = self.state
                self._json(200, {"reservations": st.records(st._log_reservations),
                                 "uploads": st.records(st._log_uploads),
                                 "reads": st.records(st._log_reads)})
            elif self.path.split("?")[0] in (f"{API_PREFIX}/captures",
                                             f"{API_PREFIX}/captures/"):
                captures.get_list(self)
            elif self.path.startswith(f"{API_PREFIX}/captures/"):
                captures.get_one(self, unquote(self.path[len(f"{API_PREFIX}/captures/"):]))
            else:
                self._json(404, {"detail": "not found"})
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            self.close_connection = True

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
            elif self.path == "/_sandbox/delete":
                found = captures.delete(self.state, self._body())
                self._json(200 if found else 404, {"ok": found})
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
        upload = make_fields(st.secret, BUCKET, key, expires, now,
                             redirect=st.faults.success_action_redirect)
        record = {
            "session_id": session_id, "athlete_id": ok["athlete_id"],
            "session_group_id": ok["session_group_id"], "file_name": ok["file_name"],
            "request": body, "issued_at": iso(now), "upload_expires_at": iso(expires)}
        with st.lock:
            st.sessions[session_id] = {"record": record}
        st.append(st._log_reservations, record)
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
            # Read part of the body (or all of it), then drop the connection without an answer.
            self.rfile.read(min(int(length), int(fault.get("after", 65536))))
            if fault.get("hold"):
                time.sleep(float(fault["hold"]))
            self._drop()
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
                chunk = int(min(1 << 20, max(16384, rate / 10))) if rate else 1 << 20
                form = read_form(cast(BinaryIO, self.rfile), int(length),
                                 match.group(1).encode(), on_fields, cast(BinaryIO, tmp),
                                 throttle, chunk)
            if st.faults.expiry_at_end and "policy" in checked:
                # An endpoint that checks the expiry when the body ends, not when it starts.
                check_policy(st.secret, BUCKET, form.fields, time.time())
            if fault and not fault.get("stored_then_drop"):
                # read whole, then refused (or redirected): nothing is stored
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
            "received_at": iso(time.time()), "at": time.time()})
        with st.lock:
            st.sessions.setdefault(session_id, {}).update(
                stored=True, stored_at=time.time(), received=str(dest))
        if fault and fault.get("stored_then_drop"):  # stored; the answer is lost
            self._drop()
            return
        if (late := st.take_fault("answer_delay")) is not None:
            time.sleep(float(late))
        etag = f'"{form.file.md5}"'
        redirect = form.fields.get("success_action_redirect")
        if redirect:  # signed into the policy (checked above): stored, then sent on
            self._send(303, b"", "text/plain", {
                "ETag": etag, "Location": redirect_location(redirect, BUCKET, key, etag)})
            return
        # S3 percent-encodes the key; a raw one goes out as its UTF-8 bytes (send_header
        # writes Latin-1).
        location = key.encode().decode("latin-1") if st.faults.raw_location else quote(key)
        self._send(204, headers={"ETag": etag, "Location": f"/{BUCKET}/{location}"})
