"""Issue 32: in a fleet each capture is followed by one node. Two followers on a real
PostgreSQL server read the sandbox over loopback HTTP while Uplift answers slowly: a round
claims 40 captures, as many as max_rate allows, but its reads outlast the claim's lease. The
lease must be the guard: a round that has used half of it releases what it has not read, so
the other node never takes a capture over mid-round and reads it a second time."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable

import httpx
from sqlalchemy import insert, select
from support import TOKEN, Sandbox, wait_for

from daemon.analysis.follower import Follower
from daemon.config.settings import AnalysisSettings
from daemon.jobs.analysis import PROCESSING, start_values
from daemon.jobs.models import Job, JobState
from daemon.jobs.store import Store
from daemon.net.api import ApiClient
from daemon.net.pace import Pace

SCALE = 100.0  # the wall clock runs this much faster: the 300 s lease lasts 3 s of real time
RATE = 10.0  # reads a second (real time), so each read takes 10 s of the scaled clock
CAPTURES = 40  # 400 s of reads: the round outlasts its 300 s lease by a third


def seed(store: Store, now: float) -> list[str]:
    """CAPTURES done uploads due for a look; Uplift never heard of them, so one read (404)
    makes each final (`gone`): any second read of one is a read twice."""
    ids = [f"lease-{k:02d}" for k in range(CAPTURES)]
    rows = [{"path": f"/c/{s}.mov", "root": "/c", "watch": "/c", "rel_path": f"{s}.mov",
             "size": 1, "mtime_ns": 1, "state": JobState.DONE, "session_id": s,
             "created_at": now - 60, "updated_at": now - 60,
             **start_values(now - 60, 86400.0), "analysis_next_at": now - 1} for s in ids]
    with store.guard.engine.begin() as conn:
        conn.execute(insert(Job), rows)
    return ids


def still_processing(store: Store) -> int:
    with store.guard.engine.connect() as conn:
        return len(conn.execute(select(Job.id).where(
            Job.analysis_status == PROCESSING)).all())


def test_two_nodes_read_each_capture_once_when_reads_outlast_the_lease(
        pg_db: str, sandbox: Sandbox) -> None:
    start = time.time()

    def wall() -> float:  # every node's clock, scaled alike
        return start + (time.time() - start) * SCALE

    stores = []
    for name in ("station-a", "station-b"):
        store = Store.open(pg_db)
        store.set_node(name)
        stores.append(store)
    seed(stores[0], wall())
    done = threading.Event()

    def follow(store: Store) -> Callable[[], None]:
        api = ApiClient(sandbox.base_url, TOKEN, httpx.Timeout(5.0))
        api.pace = Pace(RATE)
        f = Follower(store.analysis, api, AnalysisSettings(max_rate=RATE), wall,
                     lambda r: None, lambda n, m: None, fleet=True)

        def run() -> None:  # the rounds back to back (the thread's own sleeps are real time)
            while not done.is_set():
                f.round()
                done.wait(0.05)
        return run

    threads = [threading.Thread(target=follow(s), daemon=True) for s in stores]
    try:
        for t in threads:
            t.start()
        wait_for(lambda: still_processing(stores[0]) == 0, 60, interval=0.2,
                 what="every capture final")
    finally:
        done.set()
        for t in threads:
            t.join(10)
        for s in stores:
            s.close()
    reads = Counter(r["session_id"] for r in sandbox.state()["reads"] if "session_id" in r)
    twice = {s: n for s, n in reads.items() if n > 1}
    assert not twice, f"read more than once in one look: {twice}"
    assert len(reads) == CAPTURES
