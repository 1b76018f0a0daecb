"""The API client against real loopback servers that answer badly: trickled, huge, malformed,
expired or insecure reservations; S3 error documents; redirects; untrusted certificates."""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme

from daemon.errors import Kind, TransferError, Where
from daemon.net import tls
from daemon.net.api import ApiClient, Reserved, s3_error
from daemon.net.transport import make_client, proxy_for, redact_url, ssl_context
from daemon.net.upload import Uploader
from daemon.timeutil import iso_utc

Script = Callable[[BaseHTTPRequestHandler], None]
SECRET_POLICY = "c2VjcmV0LXBvbGljeS1kby1ub3QtbG9n"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.script(self)  # type: ignore[attr-defined]


class Server:
    """A loopback HTTP(S) server whose answer is a function set by the test."""

    def __init__(self, context: ssl.SSLContext | None = None):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        if context is not None:
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.httpd.script = lambda h: answer(h, 200, {})  # type: ignore[attr-defined]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        scheme = "https" if context else "http"
        self.url = f"{scheme}://127.0.0.1:{self.httpd.server_address[1]}"

    def answer(self, script: Script) -> None:
        self.httpd.script = script  # type: ignore[attr-defined]

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def answer(h: BaseHTTPRequestHandler, status: int, data: Any, ctype: str = "application/json",
           headers: dict[str, str] | None = None) -> None:
    body = data if isinstance(data, bytes) else json.dumps(data).encode()
    h.send_response(status)
    h.send_header("Content-Type", ctype)
    h.send_header("Content-Length", str(len(body)))
    for k, v in (headers or {}).items():
        h.send_header(k, v)
    h.end_headers()
    h.wfile.write(body)


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    yield s
    s.stop()


def client(server: Server, **kw: Any) -> ApiClient:
    return ApiClient(f"{server.url}/v1", "tok-secret-123", httpx.Timeout(2.0), **kw)


def reservation(**changes: Any) -> dict[str, Any]:
    data = {"session_id": "s-1", "session_group_id": "g-1",
            "upload_url": "https://bucket.s3.amazonaws.com/",
            "upload_fields": {"key": "k", "policy": SECRET_POLICY},
            "upload_expires_at": iso_utc(time.time() + 1800)}
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def refused(api: ApiClient, **kw: Any) -> TransferError:
    with pytest.raises(TransferError) as err:
        api.create_capture({"session_group_id": "g-1"}, **kw)
    assert SECRET_POLICY not in err.value.message and "tok-secret" not in err.value.message
    return err.value


def test_a_good_reservation_is_read(server: Server) -> None:
    server.answer(lambda h: answer(h, 201, reservation()))
    res = client(server).create_capture({"session_group_id": "g-1"})
    assert isinstance(res, Reserved) and res.upload_fields["policy"] == SECRET_POLICY
    assert SECRET_POLICY not in repr(res)


def test_a_trickled_answer_hits_the_total_deadline(server: Server) -> None:
    def trickle(h: BaseHTTPRequestHandler) -> None:
        body = json.dumps(reservation()).encode()
        h.send_response(201)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        for byte in body:  # each byte well inside the 2 s read timeout
            h.wfile.write(bytes([byte]))
            h.wfile.flush()
            time.sleep(0.3)

    server.answer(trickle)
    started = time.monotonic()
    err = refused(client(server, total_seconds=1.5))
    assert err.where is Where.API and err.kind is Kind.TIMEOUT, err.message
    assert time.monotonic() - started < 3.0


def test_trickled_headers_hit_the_total_deadline_too(server: Server) -> None:
    def trickle(h: BaseHTTPRequestHandler) -> None:
        for byte in b"HTTP/1.1 201 Created\r\nX-Slow: " + b"a" * 40:
            h.wfile.write(bytes([byte]))
            h.wfile.flush()
            time.sleep(0.3)

    server.answer(trickle)
    started = time.monotonic()
    assert refused(client(server, total_seconds=1.5)).kind is Kind.TIMEOUT
    assert time.monotonic() - started < 3.0


@pytest.mark.parametrize("declared", [True, False])
def test_a_huge_answer_is_refused_without_reading_it_all(server: Server, declared: bool) -> None:
    def huge(h: BaseHTTPRequestHandler) -> None:
        h.send_response(201)
        if declared:
            h.send_header("Content-Length", str(300 << 20))
        else:
            h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        chunk = b" " * 65536
        try:
            for _ in range(300 * 16):
                h.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
                              if not declared else chunk)
        except OSError:
            pass

    server.answer(huge)
    err = refused(client(server))
    assert err.kind is Kind.TOO_LARGE and err.where is Where.API


def test_an_error_answer_is_cut_not_refused(server: Server) -> None:
    server.answer(lambda h: answer(h, 503, {"detail": "busy " + "x" * (2 << 20)}))
    err = refused(client(server))
    assert err.kind is Kind.HTTP and err.status == 503 and err.message.startswith("HTTP 503")


@pytest.mark.parametrize(("changes", "words"), [
    ({"upload_fields": None}, "upload_fields is missing"),
    ({"upload_fields": "key=k"}, "upload_fields is missing or not an object"),
    ({"upload_url": "http://bucket.s3.amazonaws.com/"}, "must use https"),
    ({"upload_url": "ftp://127.0.0.1/"}, "must use https"),
    ({"upload_expires_at": "soon"}, "not an ISO 8601"),
    ({"upload_expires_at": iso_utc(time.time() - 5)}, "already past"),
    ({"session_id": None}, "session_id is missing"),
])
def test_unusable_reservations_are_malformed(server: Server, changes: dict[str, Any],
                                             words: str) -> None:
    server.answer(lambda h: answer(h, 201, reservation(**changes)))
    err = refused(client(server))
    assert err.where is Where.API and err.kind is Kind.MALFORMED
    assert words in err.message, err.message


def test_expiry_is_judged_by_our_clock_plus_the_skew(server: Server) -> None:
    server.answer(lambda h: answer(h, 201, reservation(
        upload_expires_at=iso_utc(time.time() + 60))))
    api = client(server)
    assert api.create_capture({}, now=time.time(), skew=0.0)
    assert refused(api, now=time.time(), skew=120.0).kind is Kind.MALFORMED


def test_plain_http_upload_url_is_fine_on_loopback(server: Server) -> None:
    server.answer(lambda h: answer(h, 201, reservation(upload_url="http://127.0.0.1:9/s3/b")))
    assert client(server).create_capture({}).upload_url.startswith("http://127.0.0.1")


def test_not_json_is_malformed(server: Server) -> None:
    server.answer(lambda h: answer(h, 201, b"<html>ok</html>", "text/html"))
    assert refused(client(server)).kind is Kind.MALFORMED


def test_s3_error_documents_are_parsed() -> None:
    doc = ('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
           '<Message>Invalid according to Policy: Policy expired.</Message>'
           '<RequestId>X</RequestId></Error>')
    assert s3_error(doc) == ("AccessDenied", "Invalid according to Policy: Policy expired.")
    assert s3_error("<Error><Code>A</Code>") == (None, None)  # broken XML: not guessed
    assert s3_error('{"Code": "x"}') == (None, None)


def upload_to(server: Server, tmp_path: Path, fields: dict[str, str] | None = None) -> Any:
    data = tmp_path / "a.mov"
    data.write_bytes(b"m" * 100_000)
    up = Uploader(stall_seconds=5)
    try:
        return up.upload(str(data), 100_000, f"{server.url}/s3", fields or {"key": "k"},
                         "a.mov", lambda n: None, threading.Event())
    finally:
        up.close()


def test_storage_errors_carry_s3_code_and_message(server: Server, tmp_path: Path) -> None:
    server.answer(lambda h: answer(
        h, 400, b"<Error><Code>EntityTooLarge</Code><Message>Your proposed upload exceeds "
                b"the maximum allowed size</Message></Error>", "application/xml"))
    with pytest.raises(TransferError) as err:
        upload_to(server, tmp_path)
    assert err.value.where is Where.STORAGE and err.value.code == "EntityTooLarge"
    assert "exceeds the maximum" in err.value.message


def test_the_asked_for_success_action_redirect_is_success(server: Server,
                                                          tmp_path: Path) -> None:
    server.answer(lambda h: answer(h, 303, b"", headers={
        "Location": "https://example.org/ok?from=station&bucket=b&key=k&etag=%22abc%22",
        "ETag": '"abc"'}))
    sent = upload_to(server, tmp_path, {"key": "k",
                                        "success_action_redirect": "https://example.org/ok"
                                                                   "?from=station"})
    assert sent.etag == "abc" and sent.size == 100_000


S3_307 = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>TemporaryRedirect</Code>'
          b"<Message>Please re-send this request to the specified temporary endpoint.</Message>"
          b"<Endpoint>b.s3-us-west-2.amazonaws.com</Endpoint><Bucket>b</Bucket></Error>")


@pytest.mark.parametrize(("status", "body", "location", "fields", "words"), [
    (307, S3_307, "https://b.s3-us-west-2.amazonaws.com/", {},
     ["HTTP 307 TemporaryRedirect", "b.s3-us-west-2.amazonaws.com", "re-send"]),
    (302, b"<html><body>Sign in</body></html>", "http://portal.example/login?mac=aa:bb", {},
     ["HTTP 302", "http://portal.example", "captive portal"]),
    (303, b"", "https://example.org/elsewhere?bucket=b&key=k&etag=x",
     {"success_action_redirect": "https://example.org/ok"},
     ["HTTP 303", "success_action_redirect it asked for"]),
    (303, b"", "https://example.org/ok", {}, ["HTTP 303", "example.org"]),
], ids=["s3-307", "portal-302", "303-elsewhere", "303-not-asked-for"])
def test_any_other_redirect_is_a_storage_error_naming_status_and_code(
        server: Server, tmp_path: Path, status: int, body: bytes, location: str,
        fields: dict[str, str], words: list[str]) -> None:
    ctype = "application/xml" if body.startswith(b"<?xml") else "text/html"
    server.answer(lambda h: answer(h, status, body, ctype, headers={"Location": location}))
    with pytest.raises(TransferError) as err:
        upload_to(server, tmp_path, {"key": "k", **fields})
    e = err.value
    assert e.where is Where.STORAGE and e.kind is Kind.HTTP and e.status == status
    assert e.code == ("TemporaryRedirect" if status == 307 else None)
    assert "nothing was stored" in e.message
    assert all(w in e.message for w in words), e.message
    assert "mac=" not in e.message  # where it pointed: scheme and host only


# ---- after the endpoint said "stored" (issue 28, item 5) --------------------------------------

RAW_LOCATION = "/b/captures/a/s/swing-José.mov".encode().decode("latin-1")  # its UTF-8 bytes


def counting(server: Server, script: Script) -> list[int]:
    """Answer every upload with `script`; the returned list grows by one per upload received."""
    received: list[int] = []

    def run(h: BaseHTTPRequestHandler) -> None:
        received.append(1)
        script(h)
    server.answer(run)
    return received


def cut_short(h: BaseHTTPRequestHandler, status: int) -> None:
    """An answer that promises 100 bytes of body and ends the connection after 5."""
    h.send_response(status)
    h.send_header("Content-Type", "application/xml")
    h.send_header("Content-Length", "100")
    h.send_header("ETag", '"abc"')
    h.end_headers()
    h.wfile.write(b"<Erro")
    h.wfile.flush()
    h.close_connection = True


def test_a_204_with_raw_bytes_in_location_is_stored_once_and_odd(server: Server,
                                                                 tmp_path: Path) -> None:
    """The answer's header bytes are not ASCII (S3 percent-encodes a key): once read as an
    error, the job went back to the queue and every retry stored another copy."""
    received = counting(server, lambda h: answer(h, 204, b"", headers={
        "Location": RAW_LOCATION, "ETag": '"abc"'}))
    sent = upload_to(server, tmp_path)
    assert len(received) == 1
    assert sent.etag == "abc" and sent.size == 100_000
    assert sent.oddity is not None and "Location" in sent.oddity, sent.oddity
    assert "non-ASCII" in sent.oddity and "stored" in sent.oddity


def test_a_2xx_whose_body_breaks_off_is_stored_with_the_oddity(server: Server,
                                                               tmp_path: Path) -> None:
    """Whatever breaks after a 2xx status line, the object is stored: never sent again."""
    received = counting(server, lambda h: cut_short(h, 200))
    sent = upload_to(server, tmp_path)
    assert len(received) == 1 and sent.etag == "abc"
    assert sent.oddity is not None and "HTTP 200" in sent.oddity, sent.oddity
    assert "could not be read" in sent.oddity


@pytest.mark.parametrize("script", [
    lambda h: cut_short(h, 503),
    lambda h: answer(h, 403, b"<Error><Code>AccessDenied</Code></Error>", "application/xml",
                     headers={"X-Portal": RAW_LOCATION}),
], ids=["503-cut-short", "403-raw-header"])
def test_an_error_answer_read_oddly_is_still_an_error(server: Server, tmp_path: Path,
                                                      script: Script) -> None:
    server.answer(script)
    with pytest.raises(TransferError) as err:
        upload_to(server, tmp_path)
    assert err.value.where is Where.STORAGE


# ---- trust ------------------------------------------------------------------------------------

@pytest.fixture
def private_ca(tmp_path: Path) -> Iterator[tuple[Server, Path]]:
    ca = trustme.CA(organization_name="Lab Inspection CA")
    cert = ca.issue_cert("127.0.0.1", "localhost", organization_name="Lab Proxy")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(ctx)
    pem = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(pem))
    s = Server(ctx)
    s.answer(lambda h: answer(h, 201, reservation()))
    yield s, pem
    s.stop()


def test_an_untrusted_certificate_names_subject_and_issuer(
        private_ca: tuple[Server, Path]) -> None:
    server, _ = private_ca
    err = refused(client(server))
    assert err.kind is Kind.CERTIFICATE and err.where is Where.API
    assert "127.0.0.1" in err.message and "ca_file" in err.message
    assert "O=Lab Proxy" in err.message and "O=Lab Inspection CA" in err.message, err.message


def test_ca_file_adds_trust(private_ca: tuple[Server, Path]) -> None:
    server, pem = private_ca
    assert client(server, ca_file=pem).create_capture({}).session_id == "s-1"


def test_ssl_cert_file_adds_trust(private_ca: tuple[Server, Path],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    server, pem = private_ca
    monkeypatch.setenv("SSL_CERT_FILE", str(pem))
    assert client(server).create_capture({}).session_id == "s-1"


def test_a_bad_ca_file_is_one_plain_error(tmp_path: Path) -> None:
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate")
    with pytest.raises(ValueError, match=r"ca_file .*ca\.pem"):
        ssl_context(bad)


def test_cert_names_reads_der(private_ca: tuple[Server, Path]) -> None:
    server, _ = private_ca
    port = int(server.url.rsplit(":", 1)[1])
    subject, issuer = tls.peer_names("127.0.0.1", port, None)
    assert "O=Lab Proxy" in subject and "O=Lab Inspection CA" in issuer


# ---- proxies (the environment's) ----------------------------------------------------------------

def test_redact_url_hides_the_password() -> None:
    assert redact_url("http://bob:s3cr3t@proxy.lab:3128") == "http://bob:***@proxy.lab:3128"
    assert redact_url("http://proxy.lab:3128") == "http://proxy.lab:3128"


def test_environment_proxies_and_no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.lab:3128")
    monkeypatch.setenv("NO_PROXY", "internal.lab")
    assert proxy_for("https://api.uplift.ai/v1", None) == "http://proxy.lab:3128"
    assert proxy_for("https://s3.internal.lab/", None) is None
    assert proxy_for("https://api.uplift.ai/v1", "http://other:1") == "http://other:1"
    assert proxy_for("http://api.uplift.ai/v1", None) is None


def test_an_env_proxy_is_used_by_our_clients(server: Server,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    # A dead proxy on loopback: the request must try it (and fail to connect), not go direct.
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with make_client("api", httpx.Timeout(2.0)) as c, pytest.raises(httpx.ConnectError):
        c.post(f"{server.url}/v1/captures", json={})
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    with make_client("api", httpx.Timeout(2.0)) as c:
        assert c.post(f"{server.url}/v1/captures", json={}).status_code == 200
