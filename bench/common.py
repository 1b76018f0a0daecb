"""What every benchmark shares: the daemon under test as a process, real QuickTime files, waiting
on a condition, the curl reference, and the table of rows."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from bench.net import schedstat_ns

HERE = Path(__file__).resolve().parent
WORK = HERE / "work"
ATHLETE = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
TOKEN = "bench-token-0123456789"
TICK = os.sysconf("SC_CLK_TCK")
MiB = 1024 * 1024
GiB = 1024 * MiB
ROWS: list[tuple[str, str, str, str, str]] = []  # figure, daemon, reference, ratio, target
UPLOAD_URL: list[str] = []  # the fast receiver's, once started


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def wait_for(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise RuntimeError(f"timed out waiting for {what}")


def make_movie(path: Path, size: int, width: int = 1920, height: int = 1080) -> Path:
    """A real QuickTime file from FFmpeg's mov muxer: raw video frames of noise (no encoding
    cost), about `size` bytes."""
    import av

    frame_bytes = width * height * 3 // 2
    frames = max(1, size // frame_bytes)
    noise = [os.urandom(n) for n in (width * height, width * height // 4, width * height // 4)]
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format="mov") as c:
        s = c.add_stream("rawvideo", rate=25)
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            f = av.VideoFrame(width, height, "yuv420p")
            for plane, data in zip(f.planes, noise, strict=True):
                plane.update(data)
            f.pts = i
            for pkt in s.encode(f):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)
    return path


def as_installed() -> dict[str, str]:
    """The daemon's environment as installed (constraints.txt), not as in the dev venv: there
    greenlet is present for Playwright only, and structlog loads it when it can (with the C++
    runtime: 1.1 MiB of the footprint a station never has). A module that refuses to import
    stands in for its absence."""
    stub = WORK / "as-installed" / "greenlet"
    if not stub.exists():
        stub.mkdir(parents=True)
        (stub / "__init__.py").write_text(
            'raise ImportError("greenlet: not in a production install (constraints.txt)")\n')
    path = os.environ.get("PYTHONPATH")
    return {"PYTHONPATH": str(stub.parent) + (os.pathsep + path if path else "")}


class Daemon:
    def __init__(self, name: str, watch: Path, base_url: str, settle: float = 0.5,
                 extra: str = "", env: dict[str, str] | None = None,
                 cli: list[str] | None = None):
        """`cli`: the command that runs the daemon (default: this venv's, as installed:
        see as_installed); bench/installed.py's is the one a fresh `pip install` made."""
        self.env = env or {}
        self.cli = cli or [sys.executable, "-m", "daemon"]
        self.as_installed = as_installed() if cli is None else {}
        self.dir = WORK / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.watch = watch
        self.config = self.dir / "config.toml"
        self.config.write_text("\n".join([
            "[api]", f'base_url = "{base_url}"',
            "[database]", f'url = "sqlite:///{self.dir / "jobs.db"}"',
            "[upload]", f"settle_seconds = {settle}", "allow_duplicates = true", extra,
            "[capture.movement]", 'activity = "golf"', 'movement = "full_swing"',
            "[[watch]]", f'path = "{watch}"',
            "[athletes]", f'"jane" = "{ATHLETE}"', ""]))
        self.log = self.dir / "daemon.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def upgrade(self) -> None:
        """Create the schema first, as an install does, so the daemon measured is the one that
        runs for months (it skips Alembic when the schema is current)."""
        subprocess.run([*self.cli, "db", "upgrade", "--config", str(self.config)], check=True,
                       capture_output=True)

    def start(self) -> float:
        """Start and wait until it watches; returns seconds from exec to watch.started."""
        if not (self.dir / "jobs.db").exists():
            self.upgrade()
        out = open(self.log, "ab")  # noqa: SIM115 - lives as long as the process
        started = time.monotonic()
        self.proc = subprocess.Popen(
            [*self.cli, "run", "--config", str(self.config)],
            stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, **self.as_installed, "UPLIFT_API_TOKEN": TOKEN, **self.env})
        out.close()
        wait_for(lambda: self.event("watch.started"), 120, "watch.started", 0.01)
        return time.monotonic() - started

    def events(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log.read_text().splitlines():
            if line.startswith("{"):
                out.append(json.loads(line))
        return out

    def event(self, name: str, **match: Any) -> dict[str, Any] | None:
        for e in self.events():
            if e.get("event") == name and all(e.get(k) == v for k, v in match.items()):
                return e
        return None

    def count(self, name: str) -> int:
        return sum(1 for e in self.events() if e.get("event") == name)

    def done(self) -> tuple[int, float | None]:
        """Jobs done, and the wall time the last of them was, from the job table: the log
        holds at most 10 lines a second of one event name (logs.RateLimit), so a burst of
        small uploads logs fewer `upload.done` lines than it uploads."""
        with contextlib.closing(sqlite3.connect(self.dir / "jobs.db")) as conn:
            n, last = conn.execute(
                "SELECT count(*), max(finished_at) FROM jobs WHERE state = 'done'").fetchone()
        return int(n), last

    def job_id(self, path: Path) -> int | None:
        e = self.event("job.seen", path=str(path))
        return e["job_id"] if e else None

    def cpu(self) -> float:
        """Seconds on CPU, all threads, from schedstat (nanoseconds; utime/stime are sampled
        at clock ticks and alias with timer wake-ups)."""
        assert self.proc is not None
        return schedstat_ns(self.proc.pid) / 1e9

    def hwm(self) -> int:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmHWM")

    def upload(self, src: Path, name: str, restore: bool = True) -> dict[str, Any]:
        """Rename a prepared file into the watch folder; wait for upload.done. `restore` moves
        it back out for reuse (a move out delays watchdog's next events by up to 0.5 s while it
        waits for a matching move-in, so latency runs leave their files in place)."""
        dest = self.watch / "jane" / name
        os.rename(src, dest)
        closed = time.time()
        job = wait_for(lambda: self.job_id(dest), 60, f"{name} seen")
        done = wait_for(lambda: self.event("upload.done", job_id=job), 600, f"{name} done")
        started = self.event("upload.started", job_id=job)
        assert started is not None
        if restore:
            os.rename(dest, src)
        return {"closed": closed, "started": ts(started), "done": ts(done),
                "seconds": done["seconds"]}

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(60)


def ts(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")).timestamp()


def reserve(base_url: str, name: str = "curl.mov") -> dict[str, Any]:
    return httpx.post(f"{base_url}/captures", headers={"Authorization": f"Bearer {TOKEN}"}, json={
        "athlete_id": ATHLETE, "session_group_id": ATHLETE,
        "camera_configuration": {"camera_setup_selection": "single.front_on",
                                 "camera_orientation": "landscape"},
        "movement_attributes": {"activity": "golf", "movement": "full_swing"},
        "file_name": name}).json()


def curl_upload(base_url: str, path: Path, cacert: Path | None = None) -> tuple[float, float, int]:
    """curl -F with the fields of a fresh reservation: (wall s, cpu s, max RSS bytes).
    `-H 'Expect:'`: without it curl waits up to 1 s for a `100 Continue` the receiver never
    sends (the old "0.58x curl" wall figure was that wait)."""
    r = reserve(base_url)
    args = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Expect:"]
    if cacert is not None:
        args += ["--cacert", str(cacert)]
    for k, v in r["upload_fields"].items():
        args += ["--form-string", f"{k}={v}"]
    args += ["-F", f"file=@{path};type=video/quicktime", r["upload_url"]]
    t0 = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE)
    # ru_maxrss would count the forked Python before exec: sample curl's own VmHWM instead.
    peak = 0
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        try:
            for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]) * 1024)
        except OSError:
            pass
        time.sleep(0.005)
    wall = time.perf_counter() - t0
    code = proc.stdout.read().decode() if proc.stdout else ""
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert code == "204", f"curl got {code}"
    return wall, usage.ru_utime + usage.ru_stime, peak


def row(figure: str, daemon: str, reference: str, ratio: str, target: str) -> None:
    ROWS.append((figure, daemon, reference, ratio, target))
    log(f"{figure}: daemon {daemon} | reference {reference} | {ratio} | target {target}")


