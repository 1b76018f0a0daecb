"""Memory over many uploads: does the footprint stay flat once warm? One malloc arena whose
freed upload chunks the next upload reuses (daemon/service/lifecycle.py) could fragment over
weeks; this runs rounds of mixed sizes, with the console's pages asked for now and then, and
compares the resident size after the first round with the last (a leak or a creeping heap
shows as a steady climb)."""

from __future__ import annotations

import os
import sqlite3
import statistics
import time
from pathlib import Path

import httpx

from bench.common import Daemon, MiB, log, make_movie, row, wait_for

SIZES_MIB = (1, 3, 7, 16, 33)


def _rss(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) in bytes."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0]) * 1024
    return found["VmRSS"], found["VmHWM"]


def bench_soak(base_url: str, watch: Path, rounds: int = 100) -> None:
    root = watch.parent / "soak-captures"
    (root / "jane").mkdir(parents=True, exist_ok=True)
    sources = [make_movie(root.parent / "src" / f"soak-{n}.mov", n * MiB) for n in SIZES_MIB]
    port = 8790
    d = Daemon("soak", root, base_url, settle=0.2,
               extra=f'[web]\nlisten = "127.0.0.1:{port}"')
    d.start()
    assert d.proc is not None
    db = d.dir / "jobs.db"

    def done() -> int:
        with sqlite3.connect(db) as conn:
            return int(conn.execute("SELECT count(*) FROM jobs WHERE state = 'done'")
                       .fetchone()[0])

    samples: list[int] = []
    started = time.monotonic()
    for r in range(rounds):
        dropped = []
        for i, src in enumerate(sources):
            dest = root / "jane" / f"r{r:03d}-{i}.mov"
            os.link(src, dest)  # another name, the same bytes: a new job each round
            dropped.append(dest)
        want = (r + 1) * len(sources)
        wait_for(lambda want=want: done() >= want, 120, f"round {r} uploaded", 0.05)
        if r % 10 == 0:  # someone looks at the console now and then
            for page in ("/", "/api/status", "/api/history"):
                httpx.get(f"http://127.0.0.1:{port}{page}", timeout=10)
        for dest in dropped:
            dest.unlink()
        samples.append(_rss(d.proc.pid)[0])
    took = time.monotonic() - started
    _, peak = _rss(d.proc.pid)
    d.stop()
    for src in sources:
        src.unlink()
    files = rounds * len(sources)
    gib = rounds * sum(SIZES_MIB) / 1024
    # Medians of a tenth of the rounds each: one sample can catch a transient (an upload's
    # chunks not yet given back, a page being rendered).
    window = max(1, rounds // 10)
    warm = statistics.median(samples[window:2 * window])
    end = statistics.median(samples[-window:])
    log(f"soak RSS per round (MiB): {[round(s / MiB, 1) for s in samples]}")
    row(f"soak: {files} uploads ({gib:.1f} GiB, sizes {'/'.join(map(str, SIZES_MIB))} MiB), "
        f"the console asked every 10 rounds, {took:.0f} s",
        f"RSS (median of {window} rounds) warm {warm / MiB:.1f} MiB, at the end "
        f"{end / MiB:.1f} MiB; peak {peak / MiB:.1f} MiB", "-",
        f"{(end - warm) / MiB:+.1f} MiB warm to end", "flat once warm (within 2 MiB)")
