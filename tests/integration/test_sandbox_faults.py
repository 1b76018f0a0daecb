"""The sandbox's fault injection over real loopback HTTP(S): S3 error documents and redirects,
trickled, huge and malformed reservation answers, API latency, token change and TLS."""

from __future__ import annotations

import json
import ssl
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import ATHLETE, TOKEN, Sandbox, make_movie, wait_for
from tls_proxy import PrivateCA

from daemon.errors import Kind, TransferError
from daemon.net.api import ApiClient
from daemon.net.redirect import redirect_stored
from daemon.net.upload import Uploader, multipart_parts
from daemon.sandbox import server
from daemon.sandbox.s3post import make_fields

GROUP = "22222222-3333-4444-5555-666666666666"


def capture(**changes: Any) -> dict[str, Any]:
    base = {
        "athlete_id": ATHLETE, "session_group_id": GROUP,
        "camera_configuration": {"camera_setup_selection": "single.front_on"},
        "movement_attributes": {"activity": "golf", "movement": "full_swing"},
        "file_name": "swing.mov", "capture_time": "2026-05-13T12:00:00.000Z",
    }
    return {**base, **changes}


def reserve(box: server.SandboxServer, token: str = TOKEN, **kw: Any) -> httpx.Response:
    return httpx.post(f"{box.base_url}/captures", json=capture(), timeout=10,
                      headers={"Authorization": f"Bearer {token}"}, **kw)


def post_upload(answer: dict[str, Any], data: bytes, **kw: Any) -> httpx.Response:
    """The form exactly as daemon.uploader builds it, sent in one piece."""
    head, tail = multipart_parts(answer["upload_fields"], "swing.mov", b"faultsboundary")
    return httpx.post(answer["upload_url"], content=head + data + tail, timeout=10, headers={
        "Content-Type": "multipart/form-data; boundary=faultsboundary"}, **kw)


def s3_error(response: httpx.Response) -> tuple[str, str]:
    assert response.headers["Content-Type"] == "application/xml"
    root = ET.fromstring(response.content)
    assert root.tag == "Error" and root.findtext("RequestId")
    return root.findtext("Code") or "", root.findtext("Message") or ""


def handler_threads() -> int:
    return sum("process_request_thread" in t.name for t in threading.enumerate())


def uploads(box: server.SandboxServer) -> list[dict[str, Any]]:
    return box.state.records(box.state.data / "uploads.jsonl")


SIG = "The request signature we calculated does not match the signature you provided."
TIMEOUT = ("Your socket connection to the server was not read from or written to within the "
           "timeout period.")
LARGE = "Your proposed upload exceeds the maximum allowed size"


@pytest.mark.parametrize(("fault", "code", "message"), [
    ({"status": 403, "code": "SignatureDoesNotMatch", "message": SIG},
     "SignatureDoesNotMatch", SIG),
    ({"status": 403, "code": "AccessDenied",
      "message": "Invalid according to Policy: Policy expired."},
     "AccessDenied", "Invalid according to Policy: Policy expired."),
    ({"status": 400, "code": "RequestTimeout", "message": TIMEOUT}, "RequestTimeout", TIMEOUT),
    ({"status": 400, "code": "EntityTooLarge", "message": LARGE}, "EntityTooLarge", LARGE),
    ({"status": 400, "code": "EntityTooSmall", "message": "<small> & odd"},
     "EntityTooSmall", "<small> & odd"),
    ({"status": 408}, "InternalError", "Please reduce your request rate."),
    ({"status": 503, "code": "SlowDown"}, "SlowDown", "Please reduce your request rate."),
])
def test_upload_faults_answer_s3_error_documents(box: server.SandboxServer,
                                                 fault: dict[str, Any], code: str,
                                                 message: str) -> None:
    answer = reserve(box).json()
    box.state.faults.upload = [fault]
    refused = post_upload(answer, b"movie bytes")
    assert refused.status_code == fault["status"]
    got_code, got_message = s3_error(refused)
    assert (got_code, got_message) == (code, message)
    assert uploads(box) == [] or all(u["session_id"] != answer["session_id"]
                                     for u in uploads(box))
    assert post_upload(answer, b"movie bytes").status_code == 204  # each fault fires once


def test_success_action_redirect_stores_then_sends_on_with_bucket_key_etag(
        box: server.SandboxServer) -> None:
    box.state.faults.success_action_redirect = "https://example.invalid/done?from=sandbox"
    answer = reserve(box).json()
    fields = answer["upload_fields"]
    assert fields["success_action_redirect"] == "https://example.invalid/done?from=sandbox"
    sent = post_upload(answer, b"the whole movie")
    assert sent.status_code == 303
    location = httpx.URL(sent.headers["Location"])
    assert str(location).startswith("https://example.invalid/done?from=sandbox&bucket=")
    key = fields["key"]
    assert dict(location.params) == {"from": "sandbox", "bucket": server.BUCKET, "key": key,
                                     "etag": sent.headers["ETag"]}
    assert redirect_stored(sent.headers["Location"], fields)  # the daemon reads it as stored
    stored = [u for u in uploads(box) if u["key"] == key]
    assert len(stored) == 1 and Path(stored[0]["path"]).read_bytes() == b"the whole movie"


def test_a_redirect_field_outside_the_policy_is_refused_like_s3(
        box: server.SandboxServer) -> None:
    answer = reserve(box).json()
    answer["upload_fields"]["success_action_redirect"] = "https://example.invalid/x"
    refused = post_upload(answer, b"movie")
    assert refused.status_code == 403
    assert s3_error(refused) == ("AccessDenied", "Invalid according to Policy: Extra input "
                                                 "fields: success_action_redirect")


@pytest.mark.parametrize("status", [307, 302])
def test_redirect_faults_store_nothing(box: server.SandboxServer, status: int) -> None:
    answer = reserve(box).json()
    box.state.faults.upload = [{"status": status}]
    sent = post_upload(answer, b"the whole movie")
    assert sent.status_code == status and sent.is_redirect
    location = httpx.URL(sent.headers["Location"])
    if status == 307:  # S3's own: the XML names the temporary endpoint the Location points at
        assert s3_error(sent)[0] == "TemporaryRedirect"
        endpoint = ET.fromstring(sent.content).findtext("Endpoint")
        assert location.host == endpoint and endpoint.endswith(".amazonaws.com")
    else:  # a captive portal: its own login page
        assert sent.headers["Content-Type"] == "text/html" and location.host == "portal.invalid"
    assert not redirect_stored(sent.headers["Location"], answer["upload_fields"])
    assert all(u["session_id"] != answer["session_id"] for u in uploads(box))
    assert post_upload(answer, b"the whole movie").status_code == 204  # once, then stored


def test_a_really_expired_policy_answers_exactly_like_s3(box: server.SandboxServer) -> None:
    key = f"captures/{ATHLETE}/x/swing.mov"
    fields = make_fields(box.state.secret, server.BUCKET, key, time.time() - 1,
                         time.time() - 100)
    answer = {"upload_url": f"{box.root_url}/s3/{server.BUCKET}", "upload_fields": fields}
    refused = post_upload(answer, b"late")
    assert refused.status_code == 403
    assert s3_error(refused) == ("AccessDenied", "Invalid according to Policy: Policy expired.")


def test_trickled_reservation_is_valid_and_stops_when_the_client_leaves(
        box: server.SandboxServer) -> None:
    box.state.faults.reserve = [{"trickle": 0.0005}]
    reserved = len(box.state.records(box.state.data / "reservations.jsonl"))
    whole = reserve(box)  # a fast trickle, read to the end: a valid reservation
    assert whole.status_code == 201 and whole.json()["status"] == "NEW"
    assert int(whole.headers["Content-Length"]) == len(whole.content)

    box.state.faults.reserve = [{"trickle": 0.2}]
    before = handler_threads()
    deadline = time.monotonic() + 5
    with httpx.Client(timeout=5) as client, client.stream(
            "POST", f"{box.base_url}/captures", json=capture(),
            headers={"Authorization": f"Bearer {TOKEN}"}) as response:
        assert response.status_code == 201 and int(response.headers["Content-Length"]) > 500
        got, started = b"", time.monotonic()
        for chunk in response.iter_raw():
            got += chunk
            if len(got) >= 4 or time.monotonic() > deadline:
                break
        elapsed = time.monotonic() - started
    assert got == b'{"se' and elapsed >= 0.55  # 4 bytes at 0.2 s a byte
    assert len(box.state.records(box.state.data / "reservations.jsonl")) == reserved + 2

    # A slow trickle must notice a client that left without waiting to write its next byte.
    wait_for(lambda: handler_threads() <= before, 5, what="the first trickle to stop")
    box.state.faults.reserve = [{"trickle": 60.0}]
    with httpx.Client(timeout=5) as client, client.stream(
            "POST", f"{box.base_url}/captures", json=capture(),
            headers={"Authorization": f"Bearer {TOKEN}"}) as response:
        assert response.status_code == 201
    wait_for(lambda: handler_threads() <= before, 5, what="the slow trickle to stop")


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def test_huge_reservation_streams_without_growing(box: server.SandboxServer) -> None:
    box.state.faults.reserve = [{"huge": 200_000}]
    small = reserve(box)
    assert small.status_code == 201 and len(small.content) == 200_000
    assert small.json()["session_id"] and small.json()["upload_fields"]["key"]

    box.state.faults.reserve = [{"huge": 300_000_000}]
    before, rss = handler_threads(), rss_kib()
    with httpx.Client(timeout=5) as client, client.stream(
            "POST", f"{box.base_url}/captures", json=capture(),
            headers={"Authorization": f"Bearer {TOKEN}"}) as response:
        assert response.headers["Content-Length"] == "300000000"
        got = b""
        for chunk in response.iter_raw():
            got += chunk
            if len(got) >= 1 << 20:
                break
    assert got.startswith(b'{"session_id": ') and b'"padding": "xxxx' in got
    assert rss_kib() - rss < 64 * 1024  # the sandbox streams; it never builds 300 MB
    wait_for(lambda: handler_threads() <= before, 5, what="the huge answer to stop")


def test_omit_and_set_change_only_the_answer(box: server.SandboxServer) -> None:
    box.state.faults.reserve = [
        {"omit": ["upload_fields"]},
        {"set": {"upload_url": "http://example.invalid/x",
                 "upload_expires_at": "2020-01-01T00:00:00Z"}}]
    omitted = reserve(box)
    assert omitted.status_code == 201 and "upload_fields" not in omitted.json()
    changed = reserve(box).json()
    assert changed["upload_url"] == "http://example.invalid/x"
    assert changed["upload_expires_at"] == "2020-01-01T00:00:00Z"
    assert changed["upload_fields"]["policy"] and changed["status"] == "NEW"
    recorded = box.state.records(box.state.data / "reservations.jsonl")
    ids = {r["session_id"] for r in recorded}
    assert omitted.json()["session_id"] in ids and changed["session_id"] in ids

    box.state.faults.reserve = [{"omit": ["upload_fields"]}]
    client = ApiClient(box.base_url, TOKEN, httpx.Timeout(5.0))
    with pytest.raises(TransferError) as exc:
        client.create_capture(capture())
    client.close()
    assert exc.value.kind is Kind.MALFORMED


def test_latency_delays_api_answers_not_uploads(box: server.SandboxServer) -> None:
    box.state.faults.latency = 0.6
    started = time.monotonic()
    answer = reserve(box).json()
    assert time.monotonic() - started >= 0.6
    started = time.monotonic()
    assert reserve(box, token="wrong").status_code == 401
    assert time.monotonic() - started >= 0.6
    started = time.monotonic()
    assert post_upload(answer, b"x" * 1000).status_code == 204
    assert time.monotonic() - started < 0.6


def test_token_change_refuses_the_old_token(box: server.SandboxServer) -> None:
    root = box.root_url
    assert httpx.post(f"{root}/_sandbox/token", json={}).status_code == 400
    assert httpx.post(f"{root}/_sandbox/token", json={"token": "new-token"}).json() == {
        "ok": True}
    assert reserve(box).status_code == 401
    assert reserve(box, token="new-token").status_code == 200
    endpoint = json.loads((box.state.data / "endpoint.json").read_text())
    assert endpoint["token"] == "new-token"


def test_unknown_fault_names_are_refused(box: server.SandboxServer) -> None:
    refused = httpx.post(f"{box.root_url}/_sandbox/faults", json={"reserv": [{"status": 500}]})
    assert refused.status_code == 400 and "reserv" in refused.text


def test_tls_serves_api_and_uploads_over_https(tmp_path: Path, pki: PrivateCA) -> None:
    ca, cert, key = pki.ca_pem, pki.cert, pki.key
    srv = server.start(tmp_path / "box", token=TOKEN, tls_cert=cert, tls_key=key)
    trust = ssl.create_default_context(cafile=str(ca))
    try:
        assert srv.base_url.startswith("https://127.0.0.1:")
        endpoint = json.loads((tmp_path / "box" / "endpoint.json").read_text())
        assert endpoint["base_url"] == srv.base_url
        with pytest.raises(httpx.ConnectError):  # not trusted without the private CA
            httpx.post(f"{srv.base_url}/captures", json=capture(), timeout=5)
        api = ApiClient(srv.base_url, TOKEN, httpx.Timeout(5.0),
                        client=httpx.Client(verify=trust, timeout=5.0))
        res = api.create_capture(capture())
        api.close()
        assert res.upload_url.startswith("https://127.0.0.1:")
        movie = make_movie(tmp_path / "m.mov", frames=5)
        up = Uploader(stall_seconds=10, client=httpx.Client(verify=trust, timeout=10.0))
        try:
            up.upload(str(movie), movie.stat().st_size, res.upload_url, res.upload_fields,
                      "swing.mov", lambda n: None, threading.Event())
        finally:
            up.close()
        stored = tmp_path / "box" / "received" / res.session_id / "swing.mov"
        assert stored.read_bytes() == movie.read_bytes()
    finally:
        srv.shutdown()
        srv.server_close()


def test_sandbox_command_with_tls_latency_and_token_change(tmp_path: Path,
                                                          pki: PrivateCA) -> None:
    ca, cert, key = pki.ca_pem, pki.cert, pki.key
    box = Sandbox(tmp_path / "data", latency=0.3, tls=(cert, key), ca=ca).start()
    try:
        assert box.base_url.startswith("https://")
        box.faults(reserve=[{"status": 500}])
        trust = ssl.create_default_context(cafile=str(ca))
        old = box.token
        box.set_token("rotated-token")

        def post(token: str) -> httpx.Response:
            return httpx.post(f"{box.base_url}/captures", json=capture(), verify=trust,
                              headers={"Authorization": f"Bearer {token}"}, timeout=10)

        started = time.monotonic()
        assert post(old).status_code == 401
        assert time.monotonic() - started >= 0.3
        assert post("rotated-token").status_code == 500  # the injected fault, used once
        assert post("rotated-token").status_code == 200
        assert len(box.state()["reservations"]) == 1
    finally:
        box.stop()
