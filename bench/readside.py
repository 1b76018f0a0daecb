"""The read side at scale (issue 25): the console's answers and the daemon's memory with a
busy lab's job table, and a burst of uploads with the console open in real Chromium vs closed.

The table is built the fast way: 30,000 rows inserted as the daemon records a finished upload
(the same columns, finished within the last hour, each file on disk as after_upload = "keep"
leaves it), instead of an hour of uploads through the sandbox.
"""

from __future__ import annotations

import shutil
import socket
import sqlite3
import threading
import time
import uuid
from pathlib import Path

import httpx

from bench.common import ATHLETE, Daemon, MiB, log, make_movie, row, wait_for

JOBS = 30_000
BURST = 500


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _daemon(name: str, root: Path, base_url: str) -> tuple[Daemon, str]:
    port = _port()
    d = Daemon(name, root, base_url, extra=f'[web]\nlisten = "127.0.0.1:{port}"')
    return d, f"http://127.0.0.1:{port}"


def _fill(d: Daemon, root: Path, count: int) -> None:
    """`count` uploads finished over the last hour, as `finish` records them."""
    d.upgrade()
    now = time.time()
    rows = []
    for i in range(count):
        folder = root / "jane" / f"session-{i // 500:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"clip-{i:05d}.mov"
        path.write_bytes(b"x")
        st = path.stat()
        end = now - 3500 + 3500 * i / count
        rows.append((str(path), str(root), str(root), str(path.relative_to(root)), "", 1,
                     st.st_size, st.st_mtime_ns, "done", ATHLETE, str(uuid.uuid4()), path.name,
                     "2026-01-01T10:00:00Z", "{}", '{"activity": "golf"}', False,
                     str(uuid.uuid4()), 1, 0, 0.0, 5 * MiB, end - 2.0, '"etag"',
                     f"{i:064x}", end - 60, end, end))
    with sqlite3.connect(d.dir / "jobs.db") as conn:
        conn.executemany(
            "INSERT INTO jobs (path, root, watch, rel_path, owner, claim_no, size, mtime_ns, "
            "state, athlete_id, session_group_id, file_name, capture_time, "
            "camera_configuration, movement_attributes, force, session_id, attempts, "
            "refusals, next_attempt_at, bytes_sent, upload_started_at, etag, fingerprint, "
            "created_at, updated_at, finished_at) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)


def _rss(d: Daemon) -> float:
    assert d.proc is not None
    for line in Path(f"/proc/{d.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def _timed(client: httpx.Client, path: str, n: int) -> list[float]:
    took = []
    for _ in range(n):
        t0 = time.perf_counter()
        assert client.get(path).status_code == 200
        took.append((time.perf_counter() - t0) * 1000)
    return took


def _up(client: httpx.Client) -> bool:
    try:
        return client.get("/healthz").status_code == 200
    except httpx.TransportError:
        return False


def _pct(values: list[float], p: float) -> float:
    return sorted(values)[min(len(values) - 1, int(p * len(values)))]


def _answers(d: Daemon, console: str) -> tuple[dict[str, list[float]], float, float]:
    """p50/p95 of the console's reads, and memory after them (VmRSS, VmHWM in MiB)."""
    out: dict[str, list[float]] = {}
    with httpx.Client(base_url=console, timeout=60) as c:
        wait_for(lambda: _up(c), 60, "the console")
        out["history, first call (builds the hour)"] = _timed(c, "/api/history", 1)
        out["/api/history"] = _timed(c, "/api/history", 40)
        out["/api/status"] = _timed(c, "/api/status", 40)
        out["/api/status?page=1"] = _timed(c, "/api/status?page=1&per_page=50", 40)
    return out, _rss(d), d.hwm() / MiB


def _burst(d: Daemon, root: Path, src: Path, label: str, console: str | None) -> float:
    """Seconds from dropping BURST files to all of them done, with the console open in real
    Chromium (polling as a person's browser does) or closed."""
    folder = root / "jane" / f"burst-{label}"
    staged = root.parent / f"stage-{label}"
    staged.mkdir()
    for i in range(BURST):
        shutil.copy(src, staged / f"b-{i:03d}.mov")
    stop = threading.Event()
    viewer = threading.Thread(target=_browse, args=(console, stop), daemon=True) \
        if console else None
    if viewer:
        viewer.start()
        time.sleep(3)  # the page is loaded and polling before the burst lands
    t0 = time.monotonic()
    staged.rename(folder)
    done_before = d.done()[0]
    wait_for(lambda: d.done()[0] - done_before >= BURST, 900,
             f"{BURST} uploads ({label})", 0.2)
    took = time.monotonic() - t0
    stop.set()
    if viewer:
        viewer.join(30)
    return took


def _browse(console: str, stop: threading.Event) -> None:
    from playwright.sync_api import sync_playwright

    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"]
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=args)
        page = b.new_page()
        page.goto(console + "/")
        while not stop.is_set():
            page.wait_for_timeout(250)
        b.close()


def bench_readside(base_url: str, watch: Path) -> None:
    root = watch / "readside"
    empty, console = _daemon("readside-empty", root / "empty", base_url)
    (root / "empty" / "jane").mkdir(parents=True)
    empty.start()
    _, rss0, hwm0 = _answers(empty, console)
    empty.stop()
    full, console = _daemon("readside-full", root / "full", base_url)
    log(f"building a table of {JOBS} finished uploads")
    _fill(full, root / "full", JOBS)
    full.start()
    times, rss1, hwm1 = _answers(full, console)
    for name, values in times.items():
        row(f"{name}, {JOBS} uploads in the last hour",
            f"p50 {_pct(values, 0.5):.1f} ms, p95 {_pct(values, 0.95):.1f} ms", "-", "-",
            "<= 50 ms" if "history" in name and "first" not in name else "-")
    row(f"memory after the console's reads, empty table vs {JOBS} done",
        f"VmRSS {rss1:.1f} MiB, peak {hwm1:.1f} MiB", f"empty: VmRSS {rss0:.1f} MiB, "
        f"peak {hwm0:.1f} MiB", f"+{hwm1 - hwm0:.1f} MiB peak", "within 10 MiB")
    src = make_movie(root / "one.mov", 256 * 1024, width=320, height=240)
    if Path("/usr/bin/chromium").exists():
        closed = _burst(full, root / "full", src, "closed", None)
        opened = _burst(full, root / "full", src, "open", console)
        row(f"burst of {BURST} small files on a {JOBS}-upload table, console open in Chromium",
            f"{opened:.1f} s", f"closed: {closed:.1f} s", f"{opened / closed:.2f}x",
            "<= 1.05x")
    full.stop()

