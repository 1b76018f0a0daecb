"""Fleet figures: claims per second (PostgreSQL, SQLite), takeover time, and 3 nodes against
one on the same small files. Needs PostgreSQL installed (tests/pgserver.py starts one)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
Row = Callable[..., None]


def _server():
    sys.path.insert(0, str(HERE.parent / "tests"))
    import pgserver

    if pgserver.unavailable():
        raise RuntimeError(pgserver.unavailable())
    return pgserver.start_postgres()  # system temp: the postgres user must reach it


def _queue(store, n: int, now: float) -> None:
    from daemon.jobs.store import Ready

    for i in range(n):
        seen = store.observe(f"/w/jane/{i}.mov", "/w", 10, 4_000_000_000, now, "nas")
        store.mark_ready(seen.job_id, Ready(10, 4_000_000_000, "a" * 8, "g" * 8, "x.mov",
                                            "2026-01-01T00:00:00.000Z", "{}", "{}"), now)


def claims_per_second(url: str, n: int = 2000, threads: int = 1) -> float:
    from daemon.jobs.store import Store

    now = time.time()
    seed = Store.open(url)
    seed.set_node("seed", ["nas"])
    _queue(seed, n, now)
    seed.close()
    stores = []
    for i in range(threads):
        s = Store.open(url)
        s.set_node(f"n{i}", ["nas"])
        stores.append(s)
    t0 = time.monotonic()
    ts = [threading.Thread(target=lambda s=s: [None for _ in iter(lambda: s.claim(now), None)])
          for s in stores]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    took = time.monotonic() - t0
    for s in stores:
        s.close()
    return n / took


def takeover_seconds(url: str, lease: float = 3.0) -> float:
    from daemon.jobs.fleet import Fleet
    from daemon.jobs.store import Store

    a, b = Store.open(url), Store.open(url)
    a.set_node("a", ["nas"])
    b.set_node("b", ["nas"])
    _queue(a, 1, time.time())
    a.claim(time.time())
    fa, fb = Fleet(a, "a", lease), Fleet(b, "b", lease)
    fb.beat()
    fa.beat()
    dead_at = time.monotonic()  # a stops beating here; b beats every lease/3 as a daemon does
    while not fb.beat():
        time.sleep(lease / 3)
    took = time.monotonic() - dead_at
    a.close()
    b.close()
    return took


def _movies(folder: Path, count: int) -> None:
    sys.path.insert(0, str(HERE.parent / "tests"))
    from support import make_movie

    (folder / "jane").mkdir(parents=True, exist_ok=True)
    seed = folder / ".seed.mov"
    for i in range(count):
        make_movie(seed, frames=1)
        seed.rename(folder / "jane" / f"f{i:04}.mov")


def _daemons(work: Path, url: str, base_url: str, nas: Path, nodes: int, count: int,
             token: str) -> float:
    sys.path.insert(0, str(HERE.parent / "tests"))
    from support import set_config_key, write_config

    procs = []
    for i in range(nodes):
        cfg = write_config(work / f"node{i}.toml", watch=nas, db=work / "unused.db",
                           base_url=base_url, settle=0.3, upload="concurrency = 2",
                           athletes={"jane": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"})
        text = cfg.read_text().replace(f'[[watch]]\npath = "{nas}"',
                                       f'[[watch]]\npath = "{nas}"\nshared = true\nname = "nas"')
        cfg.write_text(text + f'[node]\nname = "n{i}"\nlease_seconds = 9\n')
        set_config_key(cfg, "database", "url", json.dumps(url))
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "daemon", "run", "--config", str(cfg)],
            env={**os.environ, "UPLIFT_API_TOKEN": token}, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL))
    from daemon.jobs.store import Store

    store = Store.open(url)
    t0 = time.monotonic()
    try:
        while store.counts()["done"] < count:
            if time.monotonic() - t0 > 600:
                raise RuntimeError("fleet bench: not done in 10 min")
            time.sleep(0.2)
        return time.monotonic() - t0
    finally:
        store.close()
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)


def bench_fleet(base_url: str, watch: Path, row: Row, token: str,
                count: int = int(os.environ.get("BENCH_FLEET_FILES", "1000"))) -> None:
    work = watch.parent / "fleet"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    server = _server()
    try:
        sq = claims_per_second(f"sqlite:///{work / 'claims.db'}")
        pg1 = claims_per_second(server.create_db("claims1"))
        pg3 = claims_per_second(server.create_db("claims3"), threads=3)
        row("claims per second", f"PostgreSQL {pg1:.0f}/s (3 nodes: {pg3:.0f}/s)",
            f"SQLite {sq:.0f}/s", f"{pg1 / sq:.2f}x SQLite", "claims never the bottleneck")
        took = takeover_seconds(server.create_db("takeover"))
        row("takeover of a dead node's job", f"{took:.1f} s (lease 3 s)", "lease + lease/3",
            f"{took / 3.0:.2f}x lease", "about the lease")
        nas = work / "nas"
        _movies(nas, count)
        one = _daemons(work, server.create_db("one"), base_url, nas, 1, count, token)
        three = _daemons(work, server.create_db("three"), base_url, nas, 3, count, token)
        row(f"{count} small files, 3 nodes", f"{three:.1f} s", f"1 node {one:.1f} s",
            f"{one / three:.2f}x faster", "faster than one node")
    finally:
        server.stop()
