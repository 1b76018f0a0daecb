"""Issue 31, item 3: the API client's GET /captures/{id} against the sandbox, over real loopback
HTTP: `awaiting_upload` until the S3 stand-in stored the object, then `processing`; 404 with the
documented body for an unknown capture; injected error answers raise with their status and
Retry-After; an id is percent-encoded in the path."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest
from support import ATHLETE, TOKEN, Sandbox, make_movie

from daemon.errors import Kind, TransferError
from daemon.net.api import ApiClient
from daemon.net.upload import Uploader


def client(box: Sandbox) -> ApiClient:
    return ApiClient(box.base_url, TOKEN, httpx.Timeout(5.0))


def test_a_capture_reads_awaiting_upload_until_stored_then_processing(
        tmp_path: Path, sandbox: Sandbox) -> None:
    api = client(sandbox)
    res = api.create_capture({
        "athlete_id": ATHLETE, "session_group_id": "11111111-2222-3333-4444-555555555555",
        "camera_configuration": {"camera_setup_selection": "single.front_on",
                                 "camera_orientation": "landscape"},
        "movement_attributes": {"activity": "golf", "movement": "full_swing"},
        "file_name": "swing.mov", "capture_time": "2024-01-01T00:00:00Z"})
    assert api.get_capture(res.session_id).status == "awaiting_upload"
    movie = make_movie(tmp_path / "swing.mov", frames=1)
    size = movie.stat().st_size
    Uploader(10.0).upload(str(movie), size, res.upload_url, res.upload_fields, "swing.mov",
                          lambda n: None, threading.Event())
    got = api.get_capture(res.session_id)
    assert (got.session_id, got.status) == (res.session_id, "processing")
    sandbox.faults(capture_read=[{"status": 429, "retry_after": 7}, {"capture": "completed"}])
    with pytest.raises(TransferError) as err:
        api.get_capture(res.session_id)
    assert (err.value.kind, err.value.status, err.value.retry_after) == (Kind.HTTP, 429, 7.0)
    assert api.get_capture(res.session_id).status == "completed"


def test_an_unknown_capture_is_404_with_the_documented_body(sandbox: Sandbox) -> None:
    with pytest.raises(TransferError) as err:
        client(sandbox).get_capture("no/such capture?")
    assert err.value.status == 404 and "Capture not found." in err.value.message
    answer = httpx.get(f"{sandbox.base_url}/captures/nope", timeout=5,
                       headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.json() == {"error": "NotFound", "message": "Capture not found."}
    reads = sandbox.state()["reads"]
    assert [r["session_id"] for r in reads] == ["no/such capture?", "nope"]
