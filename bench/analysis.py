"""Following uploaded captures through Uplift's processing (issue 32): the GET /captures
requests each followed capture costs, and the idle daemon's CPU with 1,000 captures followed
beside the same daemon with none.

Both run against a sandbox of their own: the shared one hands uploads to the bench's receiver,
so it never stores a capture and none would ever leave `processing`."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import ATHLETE, TOKEN, WORK, Daemon, log, make_movie, row, wait_for
from bench.flow import idle_cpu

FINAL = ("completed", "error", "gone", "unknown")
PROCESSING_S = 20  # the sandbox's analysis time: the first look (at 15 s) finds it processing


class _Sandbox:
    def __init__(self, name: str):
        data = WORK / name
        self.proc = subprocess.Popen([sys.executable, "-m", "daemon", "sandbox", "--port", "0",
                                      "--data", str(data), "--token", TOKEN],
                                     stdout=subprocess.DEVNULL)
        wait_for((data / "endpoint.json").exists, 20, f"sandbox {name}")
        self.base_url = json.loads((data / "endpoint.json").read_text())["base_url"]
        self.root = self.base_url.rsplit("/v1", 1)[0]

    def faults(self, **faults: Any) -> None:
        httpx.post(f"{self.root}/_sandbox/faults", json=faults, timeout=10).raise_for_status()

    def reads(self) -> list[dict[str, Any]]:
        return list(httpx.get(f"{self.root}/_sandbox/state", timeout=30).json()["reads"])

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def _counts(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT analysis_status, count(*) FROM jobs "
                            "WHERE analysis_status IS NOT NULL GROUP BY analysis_status")
        return dict(rows.fetchall())


def bench_follow(base_url: str, watch: Path, count: int = 200) -> None:
    """`count` captures uploaded at once, followed until final (the sandbox keeps each
    `processing` for PROCESSING_S s): every GET /captures the daemon sent, per capture.
    Reference: the looks the schedule made, each of which could have been one GET by id."""
    box = _Sandbox("sandbox-follow")
    root = watch.parent / "follow-captures"
    staging = WORK / "src" / "follow"
    staging.mkdir(parents=True, exist_ok=True)
    (root / "jane").mkdir(parents=True, exist_ok=True)
    tiny = make_movie(WORK / "src" / "follow-tiny.mov", 20_000, 64, 64)
    for i in range(count):
        shutil.copy(tiny, staging / f"f{i:04d}.mov")
    d = Daemon("follow", root, box.base_url, settle=0.3)
    try:
        box.faults(analysis_seconds=PROCESSING_S)
        d.start()
        t0 = time.monotonic()
        for i in range(count):
            shutil.move(staging / f"f{i:04d}.mov", root / "jane" / f"f{i:04d}.mov")
        db = d.dir / "jobs.db"
        wait_for(lambda: sum(_counts(db).get(s, 0) for s in FINAL) >= count, 900,
                 f"{count} captures final", 1.0)
        took = time.monotonic() - t0
        with sqlite3.connect(db) as conn:
            looks = conn.execute("SELECT sum(analysis_looks) FROM jobs").fetchone()[0]
        d.stop()
        reads = box.reads()
    finally:
        d.stop()
        box.stop()
    pages = sum(1 for r in reads if "list" in r)
    by_id = sum(1 for r in reads if "session_id" in r)
    total = pages + by_id
    log(f"  {count} followed: {pages} list pages, {by_id} by id, {looks} looks, {took:.0f} s; "
        f"final {_counts(d.dir / 'jobs.db')}")
    row(f"GET /captures per followed capture, {count} uploaded at once, analysed after "
        f"{PROCESSING_S} s", f"{total / count:.2f} ({pages} pages + {by_id} by id; all final "
        f"in {took:.0f} s)", f"one GET by id per look: {looks / count:.2f}",
        f"{total / looks:.2f}x", "-")


def _seed(d: Daemon, root: Path, count: int, followed: bool) -> None:
    """`count` done files in the daemon's table, each `processing` if `followed`, its next look
    MAX_GAP (600 s) away, as between two looks of a long analysis: none is due in the run."""
    d.upgrade()
    now = time.time()
    rows = []
    for i in range(count):
        path = root / "jane" / f"done-{i:04d}.mov"
        if not path.exists():
            path.write_bytes(b"x")
        st = path.stat()
        rows.append((str(path), str(root), str(root), str(path.relative_to(root)), "",
                     st.st_size, st.st_mtime_ns, "done", 1, 0.0, 0, now, now, False,
                     f"{ATHLETE[:-4]}{i:04d}", "processing" if followed else None,
                     now + 600.0 if followed else None, now + 86400.0 if followed else None,
                     3 if followed else None))
    with sqlite3.connect(d.dir / "jobs.db") as conn:
        conn.executemany(
            "INSERT INTO jobs (path, root, watch, rel_path, owner, size, mtime_ns, state, "
            "attempts, next_attempt_at, bytes_sent, created_at, updated_at, force, "
            "session_id, analysis_status, analysis_next_at, analysis_deadline, "
            "analysis_looks) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)


def bench_follow_idle(base_url: str, watch: Path, count: int = 1000,
                      seconds: float = 60) -> None:
    """The idle daemon with `count` done uploads, all followed, against the same daemon with
    the same uploads none of which is followed (uploaded before issue 32)."""
    root = watch.parent / "follow-idle-captures"
    (root / "jane").mkdir(parents=True, exist_ok=True)
    quiet = Daemon("follow-idle-none", root, base_url)
    _seed(quiet, root, count, followed=False)
    quiet.start()
    none = idle_cpu(quiet, seconds)
    d = Daemon("follow-idle", root, base_url)
    _seed(d, root, count, followed=True)
    d.start()
    busy = idle_cpu(d, seconds)
    left = _counts(d.dir / "jobs.db").get("processing", 0)
    assert left == count, f"{left} of {count} still followed: a look came in the run"
    row(f"idle CPU (schedstat), {count} captures followed (none due), {seconds:.0f} s",
        busy, f"{count} done, none followed: {none}", "-", "<= 0.05 %")
