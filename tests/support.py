"""Shared test helpers: real QuickTime files, real processes, waiting on conditions."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

T = TypeVar("T")
ATHLETE = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
OTHER_ATHLETE = "11111111-2222-3333-4444-555555555555"
TOKEN = "sandbox-test-token-5b9e2c"


def wait_for(check: Callable[[], T], timeout: float = 30.0, interval: float = 0.1,
             what: str = "condition") -> T:
    """Poll `check` until it returns something truthy; fail with `what` at the deadline."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released): for a server to take, or to
    stand for a dead peer."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_movie(path: Path, frames: int = 10, width: int = 320, height: int = 240,
               rotate: int | None = None, metadata: dict[str, str] | None = None,
               apple_tags: bool = False) -> Path:
    """A real QuickTime movie from FFmpeg's mov muxer (via PyAV). Noise frames, so the size
    grows with `frames` (about 48 KB per frame at 320x240)."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    options = {"movflags": "use_metadata_tags"} if apple_tags else {}
    with av.open(str(path), "w", format="mov", options=options) as container:
        if metadata:
            container.metadata.update(metadata)
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.bit_rate = 20_000_000
        if rotate is not None:
            stream.set_display_rotation(rotate)
        for i in range(frames):
            frame = av.VideoFrame(width, height, "yuv420p")
            for plane in frame.planes:
                plane.update(os.urandom(plane.buffer_size))
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def write_config(path: Path, *, watch: Path, db: Path, base_url: str = "http://127.0.0.1:9/v1",
                 settle: float = 0.5, athletes: dict[str, str] | None = None,
                 extra: str = "", upload: str = "") -> Path:
    athletes = athletes if athletes is not None else {"jane": ATHLETE}
    defaults = {"settle_seconds": settle, "poll_seconds": 2.0, "shutdown_timeout": 5.0}
    for line in upload.splitlines():  # the caller's values win
        defaults.pop(line.split("=")[0].strip(), None)
    lines = [
        "[api]", f'base_url = "{base_url}"', "connect_timeout = 2.0", "read_timeout = 10.0",
        "[database]", f'url = "sqlite:///{db}"',
        "[upload]", *[f"{k} = {v}" for k, v in defaults.items()],
        upload,
        "[capture]", 'camera_setup_selection = "single.front_on"',
        "[capture.movement]", 'activity = "golf"', 'movement = "full_swing"',
        "[[watch]]", f'path = "{watch}"',
        "[athletes]", *[f'"{k}" = "{v}"' for k, v in athletes.items()],
        # The console is on by default on 127.0.0.1:8780: off in tests unless asked for.
        "" if "[web]" in extra else '[web]\nlisten = ""',
        extra,
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def captures_config(tmp_path: Path, base_url: str, athlete: str = "jane",
                    db: Path | None = None, **options: Any) -> tuple[Path, Path]:
    """The usual station: tmp_path/captures, with the folder `athlete` in it, watched by
    tmp_path/config.toml, its jobs in `db` (by default tmp_path/jobs.db); `options` go to
    write_config. Returns (captures, config)."""
    captures = tmp_path / "captures"
    (captures / athlete).mkdir(parents=True)
    config = write_config(tmp_path / "config.toml", watch=captures,
                          db=db or tmp_path / "jobs.db", base_url=base_url, **options)
    return captures, config


def cli(*args: str, env: dict[str, str] | None = None,
        timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "daemon", *args], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


def status(config: Path, *extra: str) -> dict[str, Any]:
    out = cli("status", "--json", *extra, "--config", str(config))
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def jobs_by_name(config: Path) -> dict[str, dict[str, Any]]:
    """Every job, however old (the default listing leaves out week-old skipped ones)."""
    return {Path(j["path"]).name: j for j in status(config, "--all")["jobs"]}


@dataclass
class Proc:
    """A daemon or sandbox running as a real subprocess, its output in a file."""

    args: list[str]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the process
        self.popen = subprocess.Popen([sys.executable, "-m", "daemon", *self.args],
                                      stdout=log, stderr=subprocess.STDOUT,
                                      env={**os.environ, **self.env})
        log.close()
        return self

    def events(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    out.append(json.loads(line))
        return out

    def has_event(self, name: str, **match: Any) -> bool:
        return any(e.get("event") == name and all(e.get(k) == v for k, v in match.items())
                   for e in self.events())

    def signal(self, sig: int = signal.SIGTERM) -> None:
        assert self.popen is not None
        self.popen.send_signal(sig)

    def stop(self, timeout: float = 30) -> int:
        assert self.popen is not None
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            # Bounded too: a process in an uninterruptible wait (a frozen FUSE server) ignores
            # SIGKILL, and the test should fail with its log, not hang until pytest-timeout.
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(30)
            raise AssertionError(f"process did not stop within {timeout}s") from None

    def kill(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait()


class Sandbox:
    """`uplift-capture sandbox` as a subprocess on a free loopback port. With `tls` (cert, key)
    it serves HTTPS; `ca` is then the CA file that state()/faults() verify it with."""

    def __init__(self, data: Path, upload_window: float = 1800.0, token: str = TOKEN,
                 latency: float | None = None, tls: tuple[Path, Path] | None = None,
                 ca: Path | None = None):
        self.data, self.token = data, token
        args = ["sandbox", "--port", "0", "--data", str(data), "--token", token,
                "--upload-window", str(upload_window)]
        if latency is not None:
            args += ["--latency", str(latency)]
        if tls is not None:
            args += ["--tls-cert", str(tls[0]), "--tls-key", str(tls[1])]
        self.verify: ssl.SSLContext | bool = \
            ssl.create_default_context(cafile=str(ca)) if ca is not None else True
        self.proc = Proc(args, data.parent / "sandbox.log")

    def start(self) -> Sandbox:
        self.proc.start()
        endpoint = self.data / "endpoint.json"
        wait_for(endpoint.exists, 20, what="the sandbox to listen")
        self.base_url = json.loads(endpoint.read_text())["base_url"]
        self.root = self.base_url.rsplit("/v1", 1)[0]
        return self

    def state(self) -> dict[str, Any]:
        return httpx.get(f"{self.root}/_sandbox/state", timeout=10, verify=self.verify).json()

    def faults(self, **faults: Any) -> None:
        httpx.post(f"{self.root}/_sandbox/faults", json=faults, timeout=10,
                   verify=self.verify).raise_for_status()

    def set_token(self, token: str) -> None:
        """The API accepts only `token` from now on (the old one gets 401)."""
        httpx.post(f"{self.root}/_sandbox/token", json={"token": token}, timeout=10,
                   verify=self.verify).raise_for_status()
        self.token = token

    def reservations_for(self, file_name: str) -> list[dict[str, Any]]:
        return [r for r in self.state()["reservations"] if r["file_name"] == file_name]

    def uploads_for(self, file_name: str) -> list[dict[str, Any]]:
        return [u for u in self.state()["uploads"] if u["key"].endswith("/" + file_name)]

    def stop(self) -> None:
        self.proc.stop()


def start_daemon(tmp: Path, config: Path, token: str = TOKEN, name: str = "daemon.log",
                 wait: bool = True) -> Proc:
    """`uplift-capture run` as a subprocess; waits for daemon.ready."""
    proc = Proc(["run", "--config", str(config)], tmp / name,
                env={"UPLIFT_API_TOKEN": token}).start()
    if wait:
        wait_for(lambda: proc.has_event("daemon.ready") or proc.popen.poll() is not None, 30,
                 what="daemon.ready")
        assert proc.popen is not None and proc.popen.poll() is None, proc.log_path.read_text()
    return proc


def job_state(config: Path, name: str) -> str | None:
    return jobs_by_name(config).get(name, {}).get("state")


# --- issue 9 end-to-end helpers ---------------------------------------------------------------

WAITING_STATES = ("pending", "queued", "reserved", "uploading")


def make_huge_movie(path: Path, size: int, frames: int = 2) -> Path:
    """A valid QuickTime movie of `size` bytes that takes no disk: a small real movie, then one
    64-bit `free` atom whose body is a hole (so the atoms still tile the file)."""
    make_movie(path, frames=frames)
    used = path.stat().st_size
    pad = size - used
    assert pad > 16, "size must exceed the small movie plus a 16-byte atom header"
    with open(path, "ab") as f:
        f.write((1).to_bytes(4, "big") + b"free" + pad.to_bytes(8, "big"))
    os.truncate(path, size)  # sparse: the free atom's body reads as zeros
    return path


def wait_settled(config: Path, timeout: float = 30.0,
                 what: str = "every job to settle") -> list[dict[str, Any]]:
    """Wait until no job is pending, queued or in flight; return all jobs (done included)."""
    def quiet() -> list[dict[str, Any]] | None:
        out = cli("status", "--json", "--all", "--config", str(config))
        assert out.returncode == 0, out.stderr
        jobs = json.loads(out.stdout)["jobs"]
        return jobs if jobs and all(j["state"] not in WAITING_STATES for j in jobs) else None
    return wait_for(quiet, timeout, interval=0.2, what=what)


def logged(proc: Proc, event: str | None, name: str) -> bool:
    """The daemon logged `event` (e.g. job.seen, job.queued, upload.started; None: any event)
    for a file whose path ends with `name` (a file name, or "folder/file.mov")."""
    return any((event is None or e.get("event") == event)
               and str(e.get("path", "")).endswith("/" + name) for e in proc.events())


# --- issue 10 end-to-end helpers (the station's own faults) -----------------------------------

def set_config_key(path: Path, table: str, key: str, value: str) -> Path:
    """Set `key = value` (value as TOML text) in `[table]` of a config written by write_config:
    replaces the key if that table has it, else adds it right under the table's header."""
    lines, current, done = path.read_text().splitlines(), "", False
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith("["):
            current = stripped.strip("[]")
        elif current == table and stripped.split("=")[0].strip() == key:
            lines[i], done = f"{key} = {value}", True
            break
    if not done:
        at = lines.index(f"[{table}]")  # ValueError: no such table, a test bug
        lines.insert(at + 1, f"{key} = {value}")
    path.write_text("\n".join(lines) + "\n")
    return path


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident set (VmHWM) so far, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmHWM in /proc/{pid}/status")


@contextlib.contextmanager
def undone_after(do: list[str], undo: list[str], cannot: str) -> Iterator[None]:
    """Run the command `do` (the test is skipped, `cannot` and the command's error the reason,
    if it fails here), and the command `undo` at the end, whatever happened."""
    import pytest

    out = subprocess.run(do, capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip(f"{cannot}: {out.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(undo, capture_output=True)


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str = "1m") -> Iterator[Path]:
    """A real, tiny file system at `path` (needs root); the test is skipped if it cannot mount."""
    path.mkdir(parents=True, exist_ok=True)
    with undone_after(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                      ["umount", "-l", str(path)], "cannot mount a tmpfs here"):
        yield path


@contextlib.contextmanager
def immutable(path: Path) -> Iterator[Path]:
    """`chattr +i`: read-only even for root (who ignores file modes); skipped if unsupported."""
    with undone_after(["chattr", "+i", str(path)], ["chattr", "-i", str(path)],
                      f"cannot make {path.name} immutable here"):
        yield path


def fill_disk(folder: Path, name: str = "filler.bin") -> Path:
    """Write a file in `folder` until its file system has no byte left (ENOSPC)."""
    import errno

    filler = folder / name
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for chunk in (1 << 16, 1 << 12, 1):
            while True:
                try:
                    if os.write(fd, b"\0" * chunk) < chunk:
                        break
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)
    return filler


# --- issue 33 helpers (the workstation) --------------------------------------------------------

def cached_bytes(path: Path) -> int:
    """How much of `path` is in the page cache now (util-linux fincore)."""
    out = subprocess.run(["fincore", "--bytes", "--noheadings", "--output", "RES", str(path)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return int(out.stdout)
