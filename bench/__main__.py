"""`make bench`: what an upload costs, side by side with curl; idle, latency, burst, restart.

Every figure is measured for the daemon (a real `uplift-capture run` process) and for a reference
in the same run, since these machines are noisy. Uploads go to bench/receiver.py (fast enough
never to be the bottleneck); reservations come from the sandbox. Writes bench/RESULTS.md.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench import fleet
from bench.net import make_pki, schedstat_ns, sendfile_upload, upload_variants

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


class Daemon:
    def __init__(self, name: str, watch: Path, base_url: str, settle: float = 0.5,
                 extra: str = "", env: dict[str, str] | None = None):
        self.env = env or {}
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
        subprocess.run([sys.executable, "-m", "daemon", "db", "upgrade", "--config",
                        str(self.config)], check=True, capture_output=True)

    def start(self) -> float:
        """Start and wait until it watches; returns seconds from exec to watch.started."""
        if not (self.dir / "jobs.db").exists():
            self.upgrade()
        out = open(self.log, "ab")  # noqa: SIM115 - lives as long as the process
        started = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "daemon", "run", "--config", str(self.config)],
            stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, "UPLIFT_API_TOKEN": TOKEN, **self.env})
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
        return {"closed": closed, "started": _ts(started), "done": _ts(done),
                "seconds": done["seconds"]}

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(60)


def _ts(event: dict[str, Any]) -> float:
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


def bench_upload(base_url: str, watch: Path) -> None:
    log("making a 1 GiB, a 256 MiB and a 2 GiB movie")
    big = make_movie(WORK / "src" / "one-gib.mov", GiB)
    d = Daemon("upload", watch, base_url)
    d.start()
    time.sleep(1)
    runs = []
    for i in range(3):
        cpu0 = d.cpu()
        r = d.upload(big, f"big-{i}.mov")
        daemon_cpu = d.cpu() - cpu0
        curl_wall, curl_cpu, _ = curl_upload(base_url, big)
        res = reserve(base_url)
        sf_wall, sf_cpu = sendfile_upload(res["upload_url"], res["upload_fields"], big)
        runs.append((daemon_cpu, r["seconds"], curl_cpu, curl_wall, sf_cpu, sf_wall))
        log(f"  run {i + 1}: daemon {daemon_cpu:.2f} s CPU, {r['seconds']:.2f} s; "
            f"curl {curl_cpu:.2f} s CPU, {curl_wall:.2f} s; sendfile {sf_cpu:.2f} s CPU")
    upload_rows("plain HTTP", runs, big.stat().st_size / GiB)

    mid = make_movie(WORK / "src" / "mid.mov", 256 * MiB)
    d.upload(mid, "mid.mov")
    hwm_mid = d.hwm()
    _, _, curl_rss_mid = curl_upload(base_url, mid)
    huge = make_movie(WORK / "src" / "two-gib.mov", 2 * GiB)
    d.upload(huge, "huge.mov")
    hwm_huge = d.hwm()
    _, _, curl_rss_huge = curl_upload(base_url, huge)
    d.stop()
    row("peak RSS, 256 MiB upload", f"{hwm_mid / MiB:.1f} MiB",
        f"curl {curl_rss_mid / MiB:.1f} MiB", "-", "<= 80 MiB")
    row("peak RSS, 2 GiB upload", f"{hwm_huge / MiB:.1f} MiB",
        f"curl {curl_rss_huge / MiB:.1f} MiB",
        f"{hwm_huge / hwm_mid:.2f}x the 256 MiB peak", "<= 80 MiB, flat in size")
    for p in (big, mid, huge):
        p.unlink()


def upload_rows(label: str, runs: list[tuple[float, ...]], gib: float) -> None:
    """Rows from runs of (daemon CPU, daemon wall, curl CPU, curl wall[, sendfile CPU, wall])."""
    med = [statistics.median(r[i] for r in runs) / gib for i in range(len(runs[0]))]
    dc, dw, cc, cw = med[:4]
    target = "<= 1.1x curl" if label == "TLS" else "-"
    row(f"CPU s per GiB, {label}", f"{dc:.2f} s", f"curl -F -H 'Expect:' {cc:.2f} s",
        f"{dc / cc:.2f}x curl", target)
    if len(med) > 4:
        row(f"CPU s per GiB, {label}, vs the physical limit", f"{dc:.2f} s",
            f"sendfile(2) {med[4]:.2f} s", f"{dc / med[4]:.2f}x sendfile", "<= 1.25x sendfile")
    row(f"wall s per GiB, {label}", f"{dw:.2f} s", f"curl {cw:.2f} s", f"{dw / cw:.2f}x curl",
        "<= 1.05x curl")


def bench_tls(base_url: str, watch: Path) -> None:
    """The same 1 GiB upload to a local TLS receiver (private CA made here); curl --cacert.
    The daemon trusts the CA through SSL_CERT_FILE, added on top of the OS store."""
    ca, cert, key = make_pki(WORK / "pki")
    receiver = subprocess.Popen([sys.executable, str(HERE / "receiver.py"), str(cert),
                                 str(key)], stdout=subprocess.PIPE)
    assert receiver.stdout is not None
    port = int(receiver.stdout.readline())
    data = WORK / "sandbox-tls"
    sandbox = subprocess.Popen(
        [sys.executable, "-m", "daemon", "sandbox", "--port", "0", "--data", str(data),
         "--token", TOKEN, "--upload-url", f"https://127.0.0.1:{port}/upload"],
        stdout=subprocess.DEVNULL)
    try:
        wait_for((data / "endpoint.json").exists, 20, "TLS sandbox")
        tls_base = json.loads((data / "endpoint.json").read_text())["base_url"]
        big = make_movie(WORK / "src" / "tls-gib.mov", GiB)
        d = Daemon("tls", watch, tls_base, env={"SSL_CERT_FILE": str(ca)})
        d.start()
        runs = []
        for i in range(3):
            cpu0 = d.cpu()
            r = d.upload(big, f"tls-{i}.mov")
            daemon_cpu = d.cpu() - cpu0
            curl_wall, curl_cpu, _ = curl_upload(tls_base, big, cacert=ca)
            runs.append((daemon_cpu, r["seconds"], curl_cpu, curl_wall))
            log(f"  TLS run {i + 1}: daemon {daemon_cpu:.2f} s CPU, {r['seconds']:.2f} s; "
                f"curl {curl_cpu:.2f} s CPU, {curl_wall:.2f} s")
        d.stop()
        upload_rows("TLS", runs, big.stat().st_size / GiB)
        big.unlink()
    finally:
        sandbox.terminate()
        receiver.terminate()


def bench_window(base_url: str, watch: Path) -> None:
    """The crash window (bytes the endpoint still receives once we send the closing boundary)
    and throughput, for the upload socket before and after; at 40 MB/s into the sandbox's own
    S3 endpoint (a slow link) and at full speed into the receiver."""
    data = WORK / "sandbox-slow"
    slow = subprocess.Popen([sys.executable, "-m", "daemon", "sandbox", "--port", "0", "--data",
                             str(data), "--token", TOKEN], stdout=subprocess.DEVNULL)
    src = WORK / "src" / "window.mov"
    src.write_bytes(os.urandom(MiB) * 128)
    body = {"athlete_id": ATHLETE, "session_group_id": ATHLETE, "file_name": "window.mov",
            "camera_configuration": {"camera_setup_selection": "single.front_on"},
            "movement_attributes": {"activity": "golf", "movement": "full_swing"}}
    try:
        wait_for((data / "endpoint.json").exists, 20, "slow sandbox")
        slow_base = json.loads((data / "endpoint.json").read_text())["base_url"]
        httpx.post(slow_base.rsplit("/v1", 1)[0] + "/_sandbox/faults",
                   json={"upload_rate": 40_000_000}).raise_for_status()
        for link, url, runs in (("40 MB/s", slow_base, 1), ("loopback", base_url, 3)):
            for name, rate, cpu, window in upload_variants(url, TOKEN, body, src, runs):
                row(f"upload socket, {link}: {name}", f"{rate:.0f} MiB/s, {cpu:.2f} s CPU/GiB",
                    "-", f"crash window {window / 1024:.0f} KiB",
                    "window ~0" if "drain" in name and "no drain" not in name else "-")
    finally:
        slow.terminate()
        src.unlink()


def bench_smallfiles(base_url: str, watch: Path, count: int = 100, latency: float = 0.05) -> None:
    """Many 5 MiB files with API latency: reservations should overlap uploads, so the whole
    batch takes about its upload time plus one round trip."""
    data = WORK / "sandbox-latency"
    up_url = UPLOAD_URL[0]
    sandbox = subprocess.Popen(
        [sys.executable, "-m", "daemon", "sandbox", "--port", "0", "--data", str(data),
         "--token", TOKEN, "--latency", str(latency), "--upload-url", up_url],
        stdout=subprocess.DEVNULL)
    try:
        wait_for((data / "endpoint.json").exists, 20, "latency sandbox")
        lat_base = json.loads((data / "endpoint.json").read_text())["base_url"]
        one = make_movie(WORK / "src" / "five.mov", 5 * MiB, 640, 480)
        staging = WORK / "src" / "many"
        staging.mkdir(exist_ok=True)
        for i in range(count):
            os.link(one, staging / f"m{i:03d}.mov")
        d = Daemon("smallfiles", watch, lat_base, settle=0.2)
        d.start()
        dest = watch / "jane" / "many"
        dest.mkdir()
        for i in range(count):
            os.rename(staging / f"m{i:03d}.mov", dest / f"m{i:03d}.mov")

        def dones() -> list[dict[str, Any]]:
            return [e for e in d.events() if e.get("event") == "upload.done"]

        wait_for(lambda: len(dones()) >= count, 600, "all small files done", 0.2)
        finished = [_ts(e) for e in dones()]
        uploading = sum(e["seconds"] for e in dones())
        d.stop()
        first = min(_ts(e) for e in d.events() if e.get("event") == "upload.started")
        wall = max(finished) - first
        slots = 2
        ideal = uploading / slots + latency
        row(f"{count} files of 5 MiB, API latency {latency * 1000:.0f} ms",
            f"{wall:.2f} s from first upload to last done",
            f"upload time / {slots} slots + 1 RTT = {ideal:.2f} s", f"{wall / ideal:.2f}x",
            "<= 1.0x (+ noise)")
        shutil.rmtree(dest)
    finally:
        sandbox.terminate()


def bench_latency(base_url: str, watch: Path, settle: float = 0.5) -> None:
    small = make_movie(WORK / "src" / "small.mov", 600_000, 320, 240)
    d = Daemon("latency", watch, base_url, settle=settle)
    d.start()
    time.sleep(1)
    starts, dones = [], []
    for i in range(20):
        staged = WORK / "src" / f"lat-{i}.mov"
        shutil.copy(small, staged)
        r = d.upload(staged, f"lat-{i}.mov", restore=False)
        starts.append(r["started"] - r["closed"])
        dones.append(r["done"] - r["closed"])
    d.stop()
    for i in range(20):
        (watch / "jane" / f"lat-{i}.mov").unlink()
    curl_walls = sorted(curl_upload(base_url, small)[0] for _ in range(5))
    ref = settle + statistics.median(curl_walls)

    def pct(values: list[float], p: float) -> float:
        values = sorted(values)
        return values[min(len(values) - 1, round(p * (len(values) - 1)))]

    row("latency close -> upload started (p50/p95)",
        f"{pct(starts, .5):.2f} / {pct(starts, .95):.2f} s", f"settle {settle:.2f} s", "-",
        f"p50 <= {settle + 0.3:.2f} s")
    row("latency close -> done (p50/p95)", f"{pct(dones, .5):.2f} / {pct(dones, .95):.2f} s",
        f"settle + curl {ref:.2f} s", f"{pct(dones, .5) / ref:.2f}x", "-")


def bench_burst(base_url: str, watch: Path, count: int = 2000) -> None:
    tiny = make_movie(WORK / "src" / "tiny.mov", 20_000, 64, 64)
    staging = WORK / "src" / "burst"
    staging.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        shutil.copy(tiny, staging / f"b{i:04d}.mov")
    d = Daemon("burst", watch, base_url, settle=0.5)
    d.start()
    time.sleep(1)
    dest = watch / "jane" / "burst"
    dest.mkdir()
    t0 = time.monotonic()
    for i in range(count):
        os.rename(staging / f"b{i:04d}.mov", dest / f"b{i:04d}.mov")
    dropped = time.monotonic() - t0
    db = d.dir / "jobs.db"

    def past_pending() -> int:
        with sqlite3.connect(db) as conn:
            return conn.execute("SELECT count(*) FROM jobs WHERE state != 'pending' "
                                "AND path LIKE ?", (f"{dest}/%",)).fetchone()[0]

    wait_for(lambda: past_pending() >= count, 300, "all burst files queued", 0.1)
    queued = time.monotonic() - t0
    found = past_pending()
    d.stop()
    row(f"burst of {count} files: found and queued", f"{found}/{count} in {queued:.1f} s",
        f"dropping them took {dropped:.2f} s", "-", "all found")
    shutil.rmtree(dest)


def bench_idle(base_url: str, watch: Path, folders: int = 501, seconds: float = 60) -> None:
    # A folder of its own: the shared one still holds the burst's files, which a fresh daemon
    # would first upload (work, not idleness).
    watch = watch.parent / "idle-captures"
    watch.mkdir(exist_ok=True)
    for i in range(folders):
        (watch / f"{ATHLETE[:-4]}{i:04d}").mkdir(exist_ok=True)
    d = Daemon("idle", watch, base_url)
    d.start()
    time.sleep(3)
    cpu0, t0 = d.cpu(), time.monotonic()
    time.sleep(seconds)
    used = d.cpu() - cpu0
    span = time.monotonic() - t0
    d.stop()
    ref = subprocess.run([sys.executable, "-c", "import time; time.sleep(0)"])
    del ref
    row(f"idle CPU (schedstat), {folders} athlete folders, {seconds:.0f} s",
        f"{100 * used / span:.4f} % of a core ({1000 * used / span * 60:.0f} ms/min)", "-", "-",
        "<= 0.02 %")


def bench_restart(base_url: str, watch: Path, count: int = 50_000) -> None:
    root = watch / "restart"
    d = Daemon("restart", root, base_url)
    root.mkdir()
    d.upgrade()
    now = time.time()
    rows = []
    for i in range(count):
        folder = root / f"{ATHLETE[:-4]}{i // 50:04d}"
        folder.mkdir(exist_ok=True)
        path = folder / f"clip-{i:05d}.mov"
        path.write_bytes(b"x")
        st = path.stat()
        rows.append((str(path), str(root), str(root), str(path.relative_to(root)), "",
                     st.st_size, st.st_mtime_ns, "done", 1, 0.0, 0, now, now, False))
    with sqlite3.connect(d.dir / "jobs.db") as conn:
        conn.executemany(
            "INSERT INTO jobs (path, root, watch, rel_path, owner, size, mtime_ns, state, "
            "attempts, next_attempt_at, bytes_sent, created_at, updated_at, force) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
    t0 = time.perf_counter()
    subprocess.run(["find", str(root), "-name", "*.mov", "-printf", "%s %T@\\n"],
                   stdout=subprocess.DEVNULL, check=True)
    find = time.perf_counter() - t0
    took = d.start()
    time.sleep(2)
    with sqlite3.connect(d.dir / "jobs.db") as conn:
        new = conn.execute("SELECT count(*) FROM jobs WHERE state != 'done'").fetchone()[0]
    d.stop()
    row(f"restart with {count} done files", f"{took:.2f} s to watching, {new} re-queued",
        f"find -printf (walk+stat) {find:.2f} s", f"{took / find:.1f}x find", "<= 10 s")


BENCHES: dict[str, Callable[[str, Path], None]] = {
    "upload": bench_upload, "tls": bench_tls, "window": bench_window,
    "smallfiles": bench_smallfiles, "latency": bench_latency, "burst": bench_burst,
    "idle": bench_idle, "restart": bench_restart,
    "fleet": lambda base_url, watch: fleet.bench_fleet(base_url, watch, row, TOKEN),
}


def main() -> int:
    if shutil.which("curl") is None:
        print("curl is needed for the reference runs", file=sys.stderr)
        return 1
    shutil.rmtree(WORK, ignore_errors=True)
    (WORK / "src").mkdir(parents=True)
    watch = WORK / "captures"
    (watch / "jane").mkdir(parents=True)
    receiver = subprocess.Popen([sys.executable, str(HERE / "receiver.py")],
                                stdout=subprocess.PIPE)
    assert receiver.stdout is not None
    port = int(receiver.stdout.readline())
    UPLOAD_URL.append(f"http://127.0.0.1:{port}/upload")
    sandbox = subprocess.Popen(
        [sys.executable, "-m", "daemon", "sandbox", "--port", "0", "--data",
         str(WORK / "sandbox"), "--token", TOKEN,
         "--upload-url", f"http://127.0.0.1:{port}/upload"],
        stdout=subprocess.DEVNULL)
    endpoint = WORK / "sandbox" / "endpoint.json"
    wait_for(endpoint.exists, 20, "sandbox")
    base_url = json.loads(endpoint.read_text())["base_url"]
    started = time.monotonic()
    chosen = sys.argv[1:] or list(BENCHES)  # e.g. `python -m bench latency idle`
    try:
        for name in chosen:
            BENCHES[name](base_url, watch)
    finally:
        sandbox.terminate()
        receiver.terminate()
    took = time.monotonic() - started
    table = ["| figure | daemon | reference (same run) | ratio | target |",
             "| --- | --- | --- | --- | --- |",
             *[f"| {' | '.join(r)} |" for r in ROWS]]
    header = (f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} cores, "
              f"Python {platform.python_version()}, {platform.machine()}; "
              f"the whole run took {took / 60:.1f} min.")
    text = "# Benchmark results (`make bench`)\n\n" + header + "\n\n" + "\n".join(table) + "\n"
    if not sys.argv[1:]:
        (HERE / "RESULTS.md").write_text(text)
    print("\n" + "\n".join(table))
    if not os.environ.get("BENCH_KEEP"):
        shutil.rmtree(WORK, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
