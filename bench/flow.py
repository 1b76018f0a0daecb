"""Files flowing through the daemon: many small files with API latency, close-to-upload latency,
a burst of arrivals, idle CPU, a restart over many done files."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from bench.common import (
    ATHLETE,
    HERE,
    TOKEN,
    UPLOAD_URL,
    WORK,
    Daemon,
    MiB,
    curl_upload,
    log,
    make_movie,
    reserve,
    row,
    ts,
    wait_for,
)
from bench.net import sendfile_upload

LINK_RATE = 125_000_000  # bytes/s: the 1 Gbit/s uplink
SLOTS = 2  # the daemon's default concurrency


def bench_smallfiles(base_url: str, watch: Path) -> None:
    """Many 5 MiB files, the API 50 ms away: reservations must overlap uploads. On a 1 Gbit/s
    link (the receiver paced) the batch should take no longer than the same bytes sent
    straight by sendfile(2) on two connections through that link, plus one round trip. On
    bare loopback (5 MiB in a few ms) reservations in flight bound it instead."""
    paced = subprocess.Popen([sys.executable, str(HERE / "receiver.py"), "--rate",
                              str(LINK_RATE)], stdout=subprocess.PIPE)
    try:
        assert paced.stdout is not None
        port = int(paced.stdout.readline())
        _smallfiles(watch, f"http://127.0.0.1:{port}/upload", 500, "1 Gbit/s link")
    finally:
        paced.terminate()
    if not os.environ.get("BENCH_ONLY_LINK"):
        _smallfiles(watch, UPLOAD_URL[0], 100, "loopback")


def _smallfiles(watch: Path, up_url: str, count: int, link: str, latency: float = 0.05) -> None:
    data = WORK / f"sandbox-latency-{count}"
    sandbox = subprocess.Popen(
        [sys.executable, "-m", "daemon", "sandbox", "--port", "0", "--data", str(data),
         "--token", TOKEN, "--latency", str(latency), "--upload-url", up_url],
        stdout=subprocess.DEVNULL)
    try:
        wait_for((data / "endpoint.json").exists, 20, "latency sandbox")
        lat_base = json.loads((data / "endpoint.json").read_text())["base_url"]
        one = WORK / "src" / "five.mov"
        if not one.exists():
            make_movie(one, 5 * MiB, 640, 480)
        wall = _daemon_batch(watch, lat_base, one, count)
        straight = _sendfile_batch(lat_base, one, count)
    finally:
        sandbox.terminate()
    ideal = straight + latency
    shaped = link != "loopback"
    row(f"{count} files of 5 MiB, {link}, API latency {latency * 1000:.0f} ms",
        f"{wall:.2f} s from first queued to last done",
        f"sendfile(2), {SLOTS} connections, {straight:.2f} s + 1 RTT"
        + (f" (bytes / link rate {count * one.stat().st_size / LINK_RATE:.2f} s)" if shaped
           else ""),
        f"{wall / ideal:.2f}x", "<= 1.0x (+ noise)" if shaped else "-")


def _daemon_batch(watch: Path, base: str, one: Path, count: int) -> float:
    """Seconds from the first file queued to the last one done."""
    staging = WORK / "src" / "many"
    staging.mkdir(exist_ok=True)
    for i in range(count):
        os.link(one, staging / f"m{i:03d}.mov")
    d = Daemon(f"smallfiles-{count}", watch, base, settle=0.2)
    d.start()
    dest = watch / "jane" / "many"
    dest.mkdir()
    for i in range(count):
        os.rename(staging / f"m{i:03d}.mov", dest / f"m{i:03d}.mov")

    wait_for(lambda: d.done()[0] >= count, 600, "all small files done", 0.2)
    log(f"  daemon CPU for {count} files: {d.cpu():.2f} s")
    events = d.events()
    last = d.done()[1]
    d.stop()
    shutil.rmtree(dest)
    # The first `job.queued` of a burst is always logged (the limit drops later ones).
    first = min(ts(e) for e in events if e.get("event") == "job.queued")
    assert last is not None
    return last - first


def _sendfile_batch(base: str, one: Path, count: int) -> float:
    """The same uploads, straight: one reservation's form, `SLOTS` threads of sendfile(2)."""
    res = reserve(base, one.name)
    left = list(range(count))
    lock = threading.Lock()

    def run() -> None:
        while True:
            with lock:
                if not left:
                    return
                left.pop()
            sendfile_upload(res["upload_url"], res["upload_fields"], one)

    threads = [threading.Thread(target=run) for _ in range(SLOTS)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0


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


def bench_pickup(base_url: str, watch: Path, settle: float = 2.0, runs: int = 20) -> None:
    """Close -> upload started for a movie written in place (open, write, close: the close is
    IN_CLOSE_WRITE), settle_seconds = 2: a complete movie goes on its close (issue 23)."""
    small = make_movie(WORK / "src" / "small.mov", 600_000, 320, 240).read_bytes()
    d = Daemon("pickup", watch, base_url, settle=settle)
    d.start()
    time.sleep(1)
    starts = []
    for i in range(runs):
        dest = watch / "jane" / f"pick-{i}.mov"
        with open(dest, "wb") as f:
            f.write(small)
        closed = time.time()
        job = wait_for(lambda p=dest: d.job_id(p), 60, f"{dest.name} seen")
        started = wait_for(lambda j=job: d.event("upload.started", job_id=j), 60, "started")
        wait_for(lambda j=job: d.event("upload.done", job_id=j), 60, f"{dest.name} done")
        starts.append(ts(started) - closed)
    d.stop()
    for i in range(runs):
        (watch / "jane" / f"pick-{i}.mov").unlink()
    starts.sort()
    p50, p95 = starts[len(starts) // 2], starts[min(len(starts) - 1, round(.95 * (runs - 1)))]
    row(f"pickup close -> upload started (p50/p95), settle {settle:.0f} s",
        f"{p50 * 1000:.0f} / {p95 * 1000:.0f} ms", f"settle {settle:.2f} s", "-",
        "p50 <= 50 ms, p95 <= 150 ms")


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
    row(f"idle CPU (schedstat), {folders} athlete folders, {seconds:.0f} s",
        idle_cpu(d, seconds), "-", "-", "<= 0.02 %")


def idle_cpu(d: Daemon, seconds: float) -> str:
    """The started daemon's CPU over `seconds` once settled (then stopped), as a row's words."""
    time.sleep(3)
    cpu0, t0 = d.cpu(), time.monotonic()
    time.sleep(seconds)
    used = d.cpu() - cpu0
    span = time.monotonic() - t0
    assert d.proc is not None
    threads = len(os.listdir(f"/proc/{d.proc.pid}/task"))
    d.stop()
    return (f"{100 * used / span:.4f} % of a core ({1000 * used / span * 60:.0f} ms/min), "
            f"{threads} threads")


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
        f"find -printf (walk+stat) {find:.2f} s", f"{took / find:.1f}x find", "<= 0.5 s")


