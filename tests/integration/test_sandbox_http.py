"""The API client and uploader against the sandbox over real loopback HTTP, and the sandbox's
faithfulness to the API reference and to S3's POST rules."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
from support import ATHLETE, OTHER_ATHLETE, TOKEN, make_movie, wait_for

from daemon.errors import Kind, Outcome, TransferError, Where, decide
from daemon.net.api import ApiClient
from daemon.net.upload import Uploader, multipart_parts
from daemon.sandbox import server
from daemon.sandbox.s3post import make_fields

GROUP = "11111111-2222-3333-4444-555555555555"


@pytest.fixture
def api(box: server.SandboxServer) -> Iterator[ApiClient]:
    client = ApiClient(box.base_url, TOKEN, httpx.Timeout(5.0))
    yield client
    client.close()


def body(**changes: Any) -> dict[str, Any]:
    base = {
        "athlete_id": ATHLETE, "session_group_id": GROUP,
        "camera_configuration": {"camera_setup_selection": "single.front_on",
                                 "camera_orientation": "landscape"},
        "movement_attributes": {"activity": "golf", "movement": "full_swing"},
        "file_name": "swing-001.mov", "capture_time": "2026-05-13T12:00:00.000Z",
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def test_reservation_has_the_documented_shape(api: ApiClient) -> None:
    res = api.create_capture(body())
    assert res.session_group_id == GROUP
    assert res.upload_url.startswith("http://127.0.0.1:")
    assert 1790 < res.expires_at - time.time() <= 1800
    assert {"key", "policy", "x-amz-signature", "Content-Type"} <= set(res.upload_fields)
    assert "policy" not in repr(res) and res.upload_fields["policy"] not in repr(res)


@pytest.mark.parametrize(("changes", "status", "words"), [
    ({"athlete_id": "nope"}, 400, "athlete_id"),
    ({"session_group_id": None}, 400, "session_group_id"),
    ({"camera_configuration": None}, 400, "camera_configuration"),
    ({"movement_attributes": "golf"}, 400, "movement_attributes"),
    ({"file_name": "a/b.mov"}, 400, "must not contain"),
    ({"file_name": "a\\b.mov"}, 400, "must not contain"),
    ({"file_name": "swing.mp4"}, 400, ".mov"),
    ({"file_name": "x" * 252 + ".mov"}, 400, "255"),
    ({"file_name": "   "}, 400, "blank"),
    ({"capture_time": "2999-01-01T00:00:00Z"}, 400, "future"),
])
def test_sandbox_refuses_what_the_api_refuses(api: ApiClient, changes: dict[str, Any],
                                             status: int, words: str) -> None:
    with pytest.raises(TransferError) as exc:
        api.create_capture(body(**changes))
    assert exc.value.status == status and words in exc.value.message
    assert decide(exc.value, 1).outcome is Outcome.FAIL


def test_upper_case_mov_and_omitted_capture_time_are_fine(api: ApiClient) -> None:
    assert api.create_capture(body(file_name="A.MOV", capture_time=None)).session_id


def test_session_group_belongs_to_one_athlete(api: ApiClient) -> None:
    api.create_capture(body())
    with pytest.raises(TransferError) as exc:
        api.create_capture(body(athlete_id=OTHER_ATHLETE))
    assert exc.value.status == 409


def test_wrong_token_is_a_credentials_problem(box: server.SandboxServer) -> None:
    client = ApiClient(box.base_url, "wrong", httpx.Timeout(5.0))
    with pytest.raises(TransferError) as exc:
        client.create_capture(body())
    assert exc.value.status == 401 and decide(exc.value, 1).outcome is Outcome.PAUSE


def upload(api: ApiClient, path: Path, **kw: Any) -> tuple[Any, Any]:
    res = api.create_capture(body(**kw))
    up = Uploader(stall_seconds=10)
    try:
        sent = up.upload(str(path), path.stat().st_size, res.upload_url, res.upload_fields,
                         "swing-001.mov", lambda n: None, threading.Event())
    finally:
        up.close()
    return res, sent


def test_upload_arrives_byte_identical_with_md5_etag(api: ApiClient, tmp_path: Path,
                                                     box: server.SandboxServer) -> None:
    movie = make_movie(tmp_path / "m.mov", frames=30)
    res, sent = upload(api, movie)
    data = movie.read_bytes()
    assert sent.etag == hashlib.md5(data).hexdigest()
    stored = box.state.data / "received" / res.session_id / "swing-001.mov"
    assert stored.read_bytes() == data


class NotRecorded(Exception):
    """What a `ready` hook raises when the job table could not say `uploading`."""


def test_the_closing_boundary_waits_for_ready(api: ApiClient, tmp_path: Path,
                                             box: server.SandboxServer) -> None:
    """The form is complete, and the endpoint stores the file, only after `ready()`; what it
    raises abandons the upload with nothing stored."""
    movie = make_movie(tmp_path / "m.mov", frames=30)
    received = box.state.data / "received"
    up = Uploader(stall_seconds=10)
    try:
        res = api.create_capture(body())
        seen: list[Any] = []
        sent = up.upload(str(movie), movie.stat().st_size, res.upload_url, res.upload_fields,
                         "swing-001.mov", lambda n: None, threading.Event(),
                         ready=lambda: seen.append((received / res.session_id).exists()),
                         all_sent=lambda: seen.append("all sent"))
        # The send turn is given back after the boundary went out, once.
        assert seen == [False, "all sent"]
        assert sent.etag == hashlib.md5(movie.read_bytes()).hexdigest()
        assert (received / res.session_id / "swing-001.mov").exists()

        other = api.create_capture(body())

        def refuse() -> None:
            raise NotRecorded()

        with pytest.raises(NotRecorded):
            up.upload(str(movie), movie.stat().st_size, other.upload_url, other.upload_fields,
                      "swing-001.mov", lambda n: None, threading.Event(), ready=refuse,
                      all_sent=lambda: seen.append("sent anyway"))
        assert "sent anyway" not in seen
    finally:
        up.close()
    # The sandbox drops its partial copy once the connection ends without the boundary.
    wait_for(lambda: not list(received.glob(".incoming-*")), 10, what="partial copy dropped")
    assert not (received / other.session_id).exists()


def post_form(url: str, parts: list[tuple[str, str | bytes]], chunked: bool = False
              ) -> httpx.Response:
    """A hand-made multipart body, for forms our uploader would never send."""
    boundary = "b0undary"
    out = b""
    for name, value in parts:
        if isinstance(value, bytes):
            out += (f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
                    f'filename="f.mov"\r\n\r\n').encode() + value + b"\r\n"
        else:
            out += (f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                    f"{value}\r\n").encode()
    out += f"--{boundary}--\r\n".encode()
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    content: Any = iter([out]) if chunked else out
    return httpx.post(url, content=content, headers=headers, timeout=10)


def test_s3_post_rules(api: ApiClient) -> None:
    res = api.create_capture(body())
    fields = list(res.upload_fields.items())
    ok = post_form(res.upload_url, [*fields, ("file", b"data")])
    assert ok.status_code == 204 and ok.headers["ETag"] == f'"{hashlib.md5(b"data").hexdigest()}"'
    extra = post_form(res.upload_url, [*fields, ("x-extra", "1"), ("file", b"data")])
    assert extra.status_code == 403 and "Extra input fields: x-extra" in extra.text
    changed = [(k, v + "x" if k == "key" else v) for k, v in fields]
    assert post_form(res.upload_url, [*changed, ("file", b"d")]).status_code == 403
    missing = [(k, v) for k, v in fields if k != "x-amz-date"]
    assert "Condition failed" in post_form(res.upload_url, [*missing, ("file", b"d")]).text
    after = post_form(res.upload_url, [*fields, ("file", b"d"), fields[0]])
    assert after.status_code == 400 and "must be last" in after.text
    forged = [(k, "0" * 64 if k == "x-amz-signature" else v) for k, v in fields]
    assert "SignatureDoesNotMatch" in post_form(res.upload_url, [*forged, ("file", b"d")]).text
    chunked = post_form(res.upload_url, [*fields, ("file", b"data")], chunked=True)
    assert chunked.status_code == 411


def test_a_stored_uploads_location_is_percent_encoded_as_s3_sends_it(api: ApiClient) -> None:
    """Issue 28, item 5: the raw UTF-8 of `swing-José.mov` in Location is not what S3 sends."""
    res = api.create_capture(body(file_name="swing-José.mov"))
    ok = post_form(res.upload_url, [*res.upload_fields.items(), ("file", b"data")])
    assert ok.status_code == 204
    raw = {k.lower(): v for k, v in ok.headers.raw}[b"location"]
    assert raw.isascii() and b"swing-Jos%C3%A9.mov" in raw, raw
    assert unquote(raw.decode()) == f"/{server.BUCKET}/{res.upload_fields['key']}"


def test_expired_policy_is_a_lapsed_window(box: server.SandboxServer, tmp_path: Path) -> None:
    fields = make_fields(box.state.secret, server.BUCKET, "captures/x/y/f.mov",
                         time.time() - 1, time.time() - 100)
    path = tmp_path / "f.mov"
    path.write_bytes(b"x" * 1000)
    up = Uploader(stall_seconds=10)
    with pytest.raises(TransferError) as exc:
        up.upload(str(path), 1000, f"{box.base_url.rsplit('/v1', 1)[0]}/s3/{server.BUCKET}",
                  fields, "f.mov", lambda n: None, threading.Event())
    up.close()
    assert exc.value.status == 403 and "Policy expired" in exc.value.message
    assert decide(exc.value, 1).outcome is Outcome.RERESERVE


def test_injected_faults_are_classified_as_transient(api: ApiClient, box: server.SandboxServer,
                                                     tmp_path: Path) -> None:
    box.state.faults.reserve = [{"status": 503, "retry_after": 7}, {"status": 502, "html": True}]
    with pytest.raises(TransferError) as first:
        api.create_capture(body())
    assert first.value.retry_after == 7.0 and decide(first.value, 1).delay >= 7.0
    with pytest.raises(TransferError) as second:
        api.create_capture(body())
    assert "HTML error page" in second.value.message
    assert decide(second.value, 1).outcome is Outcome.RETRY
    movie = make_movie(tmp_path / "m.mov", frames=10)
    box.state.faults.upload = [{"cut": True, "after": 1000}]
    with pytest.raises(TransferError) as cut:
        upload(api, movie)
    assert cut.value.where is Where.STORAGE and cut.value.kind in (Kind.PROTOCOL, Kind.CONNECT)
    assert decide(cut.value, 1).outcome is Outcome.RETRY
    box.state.faults.upload = [{"status": 503}]
    with pytest.raises(TransferError) as slow:
        upload(api, movie)
    assert "SlowDown" in slow.value.message and decide(slow.value, 1).outcome is Outcome.RETRY


def test_a_stalled_upload_is_aborted_and_retried(api: ApiClient, box: server.SandboxServer,
                                               tmp_path: Path) -> None:
    movie = make_movie(tmp_path / "m.mov", frames=3)
    res = api.create_capture(body())
    box.state.faults.upload_delay = [3.0]  # the endpoint reads nothing for 3 s
    up = Uploader(stall_seconds=1.0)
    started = time.monotonic()
    with pytest.raises(TransferError) as exc:
        up.upload(str(movie), movie.stat().st_size, res.upload_url, res.upload_fields,
                  "m.mov", lambda n: None, threading.Event())
    up.close()
    assert time.monotonic() - started < 2.9
    assert exc.value.kind is Kind.TIMEOUT and decide(exc.value, 1).outcome is Outcome.RETRY


def test_bandwidth_limit_holds_the_rate(api: ApiClient, tmp_path: Path) -> None:
    from daemon.net.bandwidth import Limiter

    data = tmp_path / "d.mov"
    data.write_bytes(os.urandom(3_000_000))
    res = api.create_capture(body())
    up = Uploader(stall_seconds=10, limiter=Limiter(2_000_000), chunk_size=250_000)
    started = time.monotonic()
    up.upload(str(data), 3_000_000, res.upload_url, res.upload_fields, "d.mov",
              lambda n: None, threading.Event())
    up.close()
    took = time.monotonic() - started
    assert 1.2 < took < 3.0  # 3 MB at 2 MB/s, less the quarter-second burst


def test_multipart_puts_fields_in_order_and_the_file_last() -> None:
    head, tail = multipart_parts({"key": "k", "policy": "p", "Content-Type": "video/quicktime"},
                                 'a"b.mov', b"BND")
    text = head.decode()
    assert text.index('name="key"') < text.index('name="policy"') < text.index('name="file"')
    assert text.endswith("Content-Type: video/quicktime\r\n\r\n")
    assert 'filename="a%22b.mov"' in text
    assert tail == b"\r\n--BND--\r\n"
