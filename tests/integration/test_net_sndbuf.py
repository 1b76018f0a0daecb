"""The upload socket: its send buffer is left to the kernel (autotuning), and the closing
boundary waits until the kernel's send queue has drained (SIOCOUTQ), so a crash cannot leave the
endpoint to complete an upload we never heard of."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import ATHLETE, TOKEN

from daemon.errors import Kind, TransferError
from daemon.net import upload as upload_mod
from daemon.net.api import ApiClient
from daemon.net.transport import current_socket, unsent_bytes
from daemon.net.upload import Aborted, Uploader
from daemon.sandbox import server

PINNED = 512 * 1024


@pytest.fixture
def box(tmp_path: Path) -> Iterator[server.SandboxServer]:
    srv = server.start(tmp_path / "sandbox", token=TOKEN)
    yield srv
    srv.shutdown()
    srv.server_close()


def body() -> dict[str, Any]:
    return {"athlete_id": ATHLETE, "session_group_id": ATHLETE, "file_name": "big.mov",
            "camera_configuration": {"camera_setup_selection": "single.front_on"},
            "movement_attributes": {"activity": "golf", "movement": "full_swing"}}


def throttled_upload(srv: server.SandboxServer, tmp_path: Path, up: Uploader,
                     size: int = 12 << 20) -> tuple[list[tuple[int, int, int]], Any]:
    """Upload `size` bytes at 8 MB/s; per progress call: (bytes sent, SO_SNDBUF, SIOCOUTQ)."""
    srv.state.faults.upload_rate = 8_000_000
    api = ApiClient(srv.base_url, TOKEN, httpx.Timeout(5.0))
    res = api.create_capture(body())
    data = tmp_path / "big.mov"
    data.write_bytes(b"\0" * size)
    seen: list[tuple[int, int, int]] = []

    def progress(sent: int) -> None:
        sock = current_socket()  # the upload's own socket, in the uploading thread
        assert sock is not None
        seen.append((sent, sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF),
                     unsent_bytes(sock) or 0))

    try:
        sent = up.upload(str(data), size, res.upload_url, res.upload_fields, "big.mov",
                         progress, threading.Event())
    finally:
        up.close()
        api.close()
    return seen, sent


def tcp_wmem() -> tuple[int, int, int]:
    low, default, high = Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()
    return int(low), int(default), int(high)


def test_the_send_buffer_is_not_pinned(box: server.SandboxServer, tmp_path: Path) -> None:
    seen, sent = throttled_upload(box, tmp_path, Uploader(stall_seconds=10))
    assert sent.size == 12 << 20
    buffers = {b for _, b, _ in seen}
    low, _, high = tcp_wmem()
    # Autotuned: within the kernel's tcp_wmem range, and not the doubled pin (1 MiB).
    assert all(low <= b <= high for b in buffers), buffers
    assert 2 * PINNED not in buffers, buffers


def test_a_pinned_buffer_would_be_seen(box: server.SandboxServer, tmp_path: Path) -> None:
    """The control: the same probe reads a pinned buffer as pinned (so the test above can fail)."""
    up = Uploader(stall_seconds=10,
                  socket_options=[(socket.SOL_SOCKET, socket.SO_SNDBUF, PINNED)])
    seen, _ = throttled_upload(box, tmp_path, up, size=2 << 20)
    assert {b for _, b, _ in seen} == {2 * PINNED}


def test_the_closing_boundary_waits_for_the_queue_to_drain(
        box: server.SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    checks: list[int | None] = []

    def recording(sock: socket.socket) -> int | None:
        checks.append(unsent_bytes(sock))
        return checks[-1]

    monkeypatch.setattr(upload_mod, "unsent_bytes", recording)
    up = Uploader(stall_seconds=10)
    seen, _ = throttled_upload(box, tmp_path, up)
    assert any(q > 0 for _, _, q in seen), "a throttled link should leave bytes queued"
    # Progress counts what the endpoint acknowledged, not what sits in the kernel: it only
    # reaches the whole file once the queue has drained.
    assert all(sent + q <= (12 << 20) + 4096 for sent, _, q in seen)
    assert seen[-1][0] == 12 << 20 and seen[-1][2] == 0
    assert max(c or 0 for c in checks) > 0 and checks[-1] == 0, checks[:3] + checks[-3:]
    assert up.drain_seconds > 0


def silent_peer() -> tuple[socket.socket, list[socket.socket]]:
    """Accepts connections and never reads: our bytes stay in the kernel's queues."""
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen()
    held: list[socket.socket] = []
    threading.Thread(target=lambda: held.append(lsock.accept()[0]), daemon=True).start()
    return lsock, held


def small_upload(tmp_path: Path, url: str, up: Uploader, abort: threading.Event) -> None:
    data = tmp_path / "s.mov"
    data.write_bytes(b"x" * 300_000)
    up.upload(str(data), 300_000, url, {"key": "k"}, "s.mov", lambda n: None, abort)


def test_a_peer_that_stops_reading_is_a_stall(tmp_path: Path) -> None:
    lsock, held = silent_peer()
    url = f"http://127.0.0.1:{lsock.getsockname()[1]}/s3"
    # The body fits in the kernel's buffers, so every write succeeds: only the drain notices.
    up = Uploader(stall_seconds=1.0)
    started = time.monotonic()
    with pytest.raises(TransferError) as err:
        small_upload(tmp_path, url, up, threading.Event())
    assert err.value.kind is Kind.TIMEOUT and "acknowledged nothing" in err.value.message
    assert time.monotonic() - started < 5
    up.close()
    lsock.close()
    for s in held:
        s.close()


def test_abort_ends_the_drain_wait(tmp_path: Path) -> None:
    lsock, held = silent_peer()
    url = f"http://127.0.0.1:{lsock.getsockname()[1]}/s3"
    up = Uploader(stall_seconds=30.0)
    abort = threading.Event()
    threading.Timer(0.5, abort.set).start()
    started = time.monotonic()
    with pytest.raises(Aborted):
        small_upload(tmp_path, url, up, abort)
    assert time.monotonic() - started < 3
    up.close()
    lsock.close()
    for s in held:
        s.close()
