"""Issue 19 item 8, the uploader's half: after `adopt` (a reload's new client), an upload
already running finishes on the old client, the old client is closed once it ends, new uploads
use the new one, and `close` at shutdown closes every client still held."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from support import ATHLETE, TOKEN, wait_for

from daemon.net.upload import Sent, Uploader
from daemon.sandbox import server

GROUP = "33333333-4444-5555-6666-777777777777"


def reserve(box: server.SandboxServer) -> dict[str, Any]:
    body = {"athlete_id": ATHLETE, "session_group_id": GROUP,
            "camera_configuration": {"camera_setup_selection": "single.front_on"},
            "movement_attributes": {"activity": "golf", "movement": "full_swing"},
            "file_name": "swing.mov"}
    return httpx.post(f"{box.base_url}/captures", json=body, timeout=10,
                      headers={"Authorization": f"Bearer {TOKEN}"}).json()


def send(up: Uploader, box: server.SandboxServer, data: Path,
         ready: threading.Event | None = None) -> Sent:
    answer = reserve(box)
    return up.upload(str(data), data.stat().st_size, answer["upload_url"],
                     answer["upload_fields"], "swing.mov", lambda n: None, threading.Event(),
                     ready=ready.set if ready else lambda: None)


def test_an_upload_in_flight_finishes_on_the_old_client_which_is_then_closed(
        box: server.SandboxServer, tmp_path: Path) -> None:
    data = tmp_path / "a.mov"
    data.write_bytes(b"m" * 200_000)
    old, new = httpx.Client(timeout=10), httpx.Client(timeout=10)
    up = Uploader(stall_seconds=10, client=old)
    box.state.faults.upload_delay = [1.0]  # the first upload waits for its answer a while
    sending = threading.Event()
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(send, up, box, data, sending)
        assert sending.wait(10)  # the whole body is out, on the old client
        up.adopt(Uploader(stall_seconds=10, client=new))
        assert not old.is_closed  # still in use
        second = send(up, box, data)  # on the new client, meanwhile
        assert second.size == 200_000 and not first.done()
        assert first.result(10).size == 200_000
    assert old.is_closed and not new.is_closed
    up.close()
    assert new.is_closed
    assert len([u for u in box.state.records(box.state.data / "uploads.jsonl")
                if u["size"] == 200_000]) >= 2


def test_an_idle_old_client_is_closed_at_once_and_close_reaches_every_client(
        box: server.SandboxServer, tmp_path: Path) -> None:
    old, new = httpx.Client(timeout=10), httpx.Client(timeout=10)
    up = Uploader(stall_seconds=10, client=old)
    up.adopt(Uploader(stall_seconds=10, client=new))
    assert old.is_closed and not new.is_closed
    up.close()
    assert new.is_closed


def test_an_api_request_in_flight_finishes_when_a_reload_replaces_the_client(
        box: server.SandboxServer) -> None:
    """The API client's half: a reservation under way when a reload brings new connection
    settings is answered on the old client (the reload used to close it at once, cutting the
    request off), which is closed once the answer is in; the next request uses the new one."""
    from daemon.net.api import ApiClient

    old, new = httpx.Client(timeout=10), httpx.Client(timeout=10)
    api = ApiClient(box.base_url, TOKEN, httpx.Timeout(10), client=old)
    body = {"athlete_id": ATHLETE, "session_group_id": GROUP,
            "camera_configuration": {"camera_setup_selection": "single.front_on"},
            "movement_attributes": {"activity": "golf", "movement": "full_swing"},
            "file_name": "swing.mov"}
    box.state.faults.latency = 1.0
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(api.create_capture, body)
        # Until the request holds its client (then it is on the wire, the answer 1 s away).
        assert wait_for(lambda: api._clients._users, 5, what="a request in flight")
        api.adopt(ApiClient(box.base_url, TOKEN, httpx.Timeout(10), client=new))
        assert not old.is_closed
        assert first.result(10).session_id
    assert old.is_closed and not new.is_closed
    box.state.faults.latency = None
    assert api.create_capture(body).session_id
    api.close()
    assert new.is_closed
