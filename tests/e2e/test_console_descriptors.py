"""The console under a descriptor flood from the same machine (issue 30, item 1): 1,100
connections that never finish their headers, with the daemon's soft open-file limit at systemd's
default of 1,024 set after it started. Files still upload, the console holds at most 100
connections and closes the silent ones, and the log does not flood."""

from __future__ import annotations

import collections
import contextlib
import json
import os
import resource
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support import (
    Sandbox,
    captures_config,
    free_port,
    jobs_by_name,
    make_movie,
    start_daemon,
    wait_for,
)

from daemon.service import runtime

FLOOD = 1100
CONSOLE_MAX = 100


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@contextlib.contextmanager
def own_limit(wanted: int) -> Iterator[None]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < wanted:
        pytest.skip(f"this test needs {wanted} open files; the hard limit here is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def half_open(port: int) -> socket.socket | None:
    """A connection that sends the start of a request and never ends its headers."""
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    except OSError:  # refused or reset at once: the console turned it away
        return None
    return sock


def closed_by_peer(sock: socket.socket) -> bool:
    sock.settimeout(0)
    try:
        return sock.recv(1) == b""
    except BlockingIOError:
        return False
    except OSError:  # reset
        return True


def lines_per_event_second(log: Path) -> collections.Counter[tuple[str, str]]:
    counts: collections.Counter[tuple[str, str]] = collections.Counter()
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                counts[(event.get("event", ""), event.get("timestamp", "")[:19])] += 1
    return counts


def test_a_flood_of_silent_connections_starves_nothing(tmp_path: Path) -> None:
    sandbox = Sandbox(tmp_path / "sandbox").start()
    port = free_port()
    captures, config = captures_config(
        tmp_path, sandbox.base_url, extra=f'[web]\nlisten = "127.0.0.1:{port}"')
    daemon = start_daemon(tmp_path, config)
    socks: list[socket.socket] = []
    try:
        pid = daemon.popen.pid  # type: ignore[union-attr]
        _, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
        # As systemd sets it (soft 1,024), but after start: the console must hold on its own.
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (1024, hard))
        base = open_fds(pid)
        with own_limit(FLOOD + 200):
            for _ in range(FLOOD):
                if (sock := half_open(port)) is not None:
                    socks.append(sock)
            # The console keeps at most CONSOLE_MAX of them; the rest are closed at accept.
            wait_for(lambda: open_fds(pid) <= base + CONSOLE_MAX + 10, 20,
                     what="the console to turn the surplus away")
            movie = make_movie(captures / "jane" / "swing.mov")
            wait_for(lambda: jobs_by_name(config).get("swing.mov", {}).get("state") == "done",
                     60, what="the upload to finish during the flood")
            assert len(sandbox.uploads_for(movie.name)) == 1
            # Connections that never complete their headers are closed after 10 s.
            started = time.monotonic()
            wait_for(lambda: all(closed_by_peer(s) for s in socks), 25,
                     what="the silent connections to be closed")
            assert time.monotonic() - started <= 20
        # The console answers again, as a coach's browser would.
        wait_for(lambda: _get_ok(port), 10, what="the console to answer again")
    finally:
        for sock in socks:
            sock.close()
        assert daemon.stop() == 0
        sandbox.stop()
    assert "Too many open files" not in daemon.log_path.read_text(errors="replace")
    worst = max(lines_per_event_second(daemon.log_path).values(), default=0)
    assert worst <= 11, f"{worst} lines of one event in one second"


def _get_ok(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 5) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        return s.recv(64).startswith(b"HTTP/1.1 200")
    return False


def test_out_of_descriptors_is_the_stations_fault_not_the_files(tmp_path: Path) -> None:
    """With no descriptor left, a finished movie waits (an ATTENTION says why) instead of
    failing for good with "Too many open files"; once descriptors are back it uploads."""
    sandbox = Sandbox(tmp_path / "sandbox").start()
    captures, config = captures_config(tmp_path, sandbox.base_url)
    daemon = start_daemon(tmp_path, config)
    try:
        pid = daemon.popen.pid  # type: ignore[union-attr]
        soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
        highest = max(int(fd) for fd in os.listdir(f"/proc/{pid}/fd"))
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (highest + 1, hard))
        movie = make_movie(tmp_path / "swing.mov")
        os.rename(movie, captures / "jane" / "swing.mov")
        state = runtime_state(tmp_path / "jobs.db.state")
        wait_for(lambda: "open_files" in state(), 30, what="the open-files attention")
        job = jobs_by_name(config)["swing.mov"]
        assert job["state"] in ("pending", "queued"), job
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (soft, hard))
        wait_for(lambda: jobs_by_name(config)["swing.mov"]["state"] == "done", 60,
                 what="the upload once descriptors are back")
        wait_for(lambda: "open_files" not in state(), 20, what="the attention to clear")
        assert len(sandbox.uploads_for("swing.mov")) == 1
    finally:
        assert daemon.stop() == 0
        sandbox.stop()


def runtime_state(path: Path) -> Callable[[], dict[str, str]]:
    return lambda: dict(runtime.read(path).get("attention", {}))
