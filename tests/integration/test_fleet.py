"""Fleet mode on a real database, SQLite and PostgreSQL: claims carry their holder and number,
a stale holder's write changes nothing, heartbeats and takeover, LISTEN/NOTIFY wake-ups, and a
shared file seen by several nodes is one job."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text, update
from sqlalchemy.engine import make_url

from daemon import status as status_mod
from daemon.jobs.fleet import Fleet, takeover_reason
from daemon.jobs.listen import Listener
from daemon.jobs.models import Job, JobState, Node
from daemon.jobs.store import Ready, Store, TakenOver, TransitionError

NOW = 1_800_000_000.0
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def pg(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh PostgreSQL database: tests/pgserver.py's `pg_db`; else, for a quick run
    against a server of one's own, a new database on $UPLIFT_TEST_PG_URL."""
    try:
        yield str(request.getfixturevalue("pg_db"))
        return
    except pytest.FixtureLookupError:
        server = os.environ.get("UPLIFT_TEST_PG_URL")
    if server is None:
        pytest.skip("no PostgreSQL server for the tests")
    name = f"fleet_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield make_url(server).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'jobs.db'}"
    return request.getfixturevalue("pg")


def node_store(url: str, name: str, shared: tuple[str, ...] = ("nas",)) -> Store:
    store = Store.open(url)
    store.set_node(name, shared)
    return store


@pytest.fixture
def stores(url: str) -> Iterator[tuple[Store, Store]]:
    a, b = node_store(url, "station-a"), node_store(url, "station-b")
    yield a, b
    a.close()
    b.close()


def ready(size: int = 10, mtime: int = 1) -> Ready:
    return Ready(size=size, mtime_ns=mtime, athlete_id="a" * 8, session_group_id="g" * 8,
                 file_name="x.mov", capture_time="2026-01-01T00:00:00.000Z",
                 camera_configuration="{}", movement_attributes="{}")


def queue_shared(store: Store, name: str, now: float = NOW, root: str = "/mnt/a") -> int:
    seen = store.observe(f"{root}/jane/{name}", root, 10, 4_000_000_000, now, "nas")
    assert store.mark_ready(seen.job_id, ready(10, 4_000_000_000), now)
    return seen.job_id


def test_claim_sets_holder_and_claim_number(stores: tuple[Store, Store]) -> None:
    a, _ = stores
    job_id = queue_shared(a, "a.mov")
    job = a.claim(NOW)
    assert job is not None and job.id == job_id
    assert (job.state, job.node, job.claim_no, job.attempts) == ("reserved", "station-a", 1, 1)
    a.requeue(job.claim, [JobState.RESERVED], NOW, due=NOW, reason="again")
    again = a.claim(NOW)
    assert again is not None and (again.node, again.claim_no) == ("station-a", 2)


def taken_over_mid_upload(a: Store, b: Store) -> tuple[Job, list[float]]:
    """station-a claims a shared job and starts its upload; then falls silent past its lease
    while station-b, beating for a full lease, takes the job over. Returns a's job (its claim
    stale now) and the clock, set after the takeover."""
    job_id = queue_shared(a, "a.mov")
    job = a.claim(NOW)
    assert job is not None
    a.record_reservation(job.claim, "s-a", "g", "http://u", NOW + 60, NOW)
    a.start_upload(job.claim, NOW)
    clock = [NOW]
    Fleet(a, "station-a", 30.0, clock=lambda: clock[0]).beat()
    fleet_b = Fleet(b, "station-b", 30.0, clock=lambda: clock[0], monotonic=lambda: clock[0])
    fleet_b.beat()
    clock[0] += 31.0  # a is silent past its lease, b has beaten for a full lease
    assert fleet_b.beat() == [job_id]
    return job, clock


def test_stale_holder_cannot_write_after_takeover(stores: tuple[Store, Store]) -> None:
    a, b = stores
    job, clock = taken_over_mid_upload(a, b)
    job_id = job.id
    taken = b.get(job_id)
    assert taken is not None
    assert (taken.state, taken.node, taken.claim_no) == ("queued", None, 2)
    assert taken.last_error == takeover_reason("station-a")
    assert [r.outcome for r in b.reservations(job_id)] == ["abandoned"]

    with pytest.raises(TakenOver):  # a comes back and finishes its upload: changes nothing
        a.finish(job.claim, "etag-a", NOW + 40)
    assert b.get(job_id).state == "queued"
    with pytest.raises(TransitionError):
        a.progress(job.claim, 5, NOW + 40)

    claimed = b.claim(clock[0])
    assert claimed is not None and (claimed.node, claimed.claim_no) == ("station-b", 3)
    b.start_upload(claimed.claim, clock[0])
    with pytest.raises(TakenOver):  # a's outcome write cannot overwrite the new holder's
        a.fail(job.claim, [JobState.UPLOADING], NOW + 41, "a's stale failure")
    b.finish(claimed.claim, "etag-b", clock[0])
    done = a.get(job_id)
    assert (done.state, done.etag, done.node) == ("done", "etag-b", "station-b")


def test_a_stale_upload_cannot_write_under_its_own_nodes_newer_claim(pg: str) -> None:
    """Issue 29, item 1: station-a is cut off past its lease mid-upload, its job is taken over
    and claimed again by a's own reserve-ahead. The stale upload's requeue (or outcome) carries
    its own claim and is refused; the live claim's upload is the only one that lands."""
    a, b = node_store(pg, "station-a"), node_store(pg, "station-b")
    try:
        stale, clock = taken_over_mid_upload(a, b)
        job_id = stale.id
        live = a.claim(clock[0])  # a's reserve-ahead, back on line, claims the job again
        assert live is not None and live.id == job_id
        assert (live.node, live.claim_no) == ("station-a", stale.claim_no + 2)
        a.record_reservation(live.claim, "s-2", "g", "http://u", clock[0] + 60, clock[0])
        with pytest.raises(TakenOver):  # the stale upload gives its job back: refused
            a.requeue(stale.claim, [JobState.RESERVED, JobState.UPLOADING], clock[0],
                      due=clock[0], reason="stale", count_attempt=False)
        a.start_upload(live.claim, clock[0])
        for stale_write in (lambda: a.finish(stale.claim, "etag-1", clock[0]),
                            lambda: a.progress(stale.claim, 5, clock[0]),
                            lambda: a.reserve_again(stale.claim, clock[0])):
            with pytest.raises(TakenOver):
                stale_write()
        row = a.get(job_id)
        assert (row.state, row.node, row.claim_no, row.session_id) == (
            "uploading", "station-a", live.claim_no, "s-2")
        a.finish(live.claim, "etag-2", clock[0])
        done = a.get(job_id)
        assert (done.state, done.etag, done.attempts) == ("done", "etag-2", 1)
    finally:
        a.close()
        b.close()


def test_takeover_waits_a_lease_after_the_database_was_away(stores: tuple[Store, Store]) -> None:
    a, b = stores
    queue_shared(a, "a.mov")
    assert a.claim(NOW) is not None
    clock = [NOW]
    Fleet(a, "station-a", 30.0, clock=lambda: clock[0]).beat()
    fleet_b = Fleet(b, "station-b", 30.0, clock=lambda: clock[0], monotonic=lambda: clock[0])
    clock[0] += 100.0
    assert fleet_b.beat() == []  # b's first beat (as after an outage): everyone's beat is old
    clock[0] += 10.0
    assert fleet_b.beat() == []
    clock[0] += 25.0
    assert len(fleet_b.beat()) == 1


def test_alive_and_own_recovery(url: str) -> None:
    a, b = node_store(url, "station-a"), node_store(url, "station-b")
    try:
        ja, jb = queue_shared(a, "a.mov"), queue_shared(a, "b.mov")
        assert a.claim(NOW).id == ja
        assert b.claim(NOW).id == jb
        Fleet(a, "station-a", 30.0, clock=lambda: NOW).beat()
        Fleet(b, "station-b", 30.0, clock=lambda: NOW - 100).beat()
        nodes = {n["name"]: n for n in a.nodes(NOW, 30.0)}
        assert nodes["station-a"]["alive"] and not nodes["station-b"]["alive"]
        restarted = node_store(url, "station-a")
        try:
            recovered = restarted.recover(NOW)
        finally:
            restarted.close()
        if a.fleet:  # a restarting node takes back its own jobs at once, not the others'
            assert recovered == 1 and a.get(jb).state == "reserved"
        else:  # SQLite is one node: everything in flight was its own
            assert recovered == 2
        assert a.get(ja).state == "queued"
    finally:
        a.close()
        b.close()


def test_one_shared_file_seen_by_two_nodes_is_one_job(stores: tuple[Store, Store]) -> None:
    a, b = stores
    # The same file through two mounts; b's file system keeps mtimes to 2 s.
    sa = a.observe("/mnt/a/jane/s1/x.mov", "/mnt/a", 50, 7_300_000_123, NOW, "nas")
    sb = b.observe("/srv/nas/jane/s1/x.mov", "/srv/nas", 50, 6_000_000_000, NOW, "nas")
    assert sa.job_id == sb.job_id and sa.new and sb.new
    assert a.mark_ready(sa.job_id, ready(50, 7_300_000_123), NOW)
    with pytest.raises(TransitionError):  # b settled it too, a bit later: it is queued already
        b.mark_ready(sb.job_id, ready(50, 6_000_000_000), NOW)
    again = b.observe("/srv/nas/jane/s1/x.mov", "/srv/nas", 50, 6_000_000_000, NOW, "nas")
    assert again.job_id == sa.job_id and not again.new and again.state is JobState.QUEUED
    job = a.get(sa.job_id)
    assert (job.watch, job.rel_path, job.owner, job.path) == (
        "nas", "jane/s1/x.mov", "", "/mnt/a/jane/s1/x.mov")
    # Node-local folders at the same path on two nodes are two different files.
    la = a.observe("/srv/local/jane/y.mov", "/srv/local", 5, 1, NOW)
    lb = b.observe("/srv/local/jane/y.mov", "/srv/local", 5, 1, NOW)
    assert (la.job_id != lb.job_id) == a.fleet
    changed = b.observe("/srv/nas/jane/s1/x.mov", "/srv/nas", 60, 9_000_000_000, NOW, "nas")
    assert changed.job_id == sa.job_id and changed.new  # grew after it was queued: resettle
    assert a.get(sa.job_id).state == "pending"


def test_node_local_jobs_wait_for_their_node(url: str) -> None:
    a, b = node_store(url, "station-a"), node_store(url, "station-b")
    try:
        seen = a.observe("/srv/local/jane/y.mov", "/srv/local", 10, 1, NOW)
        a.mark_ready(seen.job_id, ready(), NOW)
        if not a.fleet:
            assert b.claim(NOW) is not None  # SQLite: one node, exactly as before
            return
        assert b.claim(NOW) is None  # only station-a uploads its own folders
        Fleet(a, "station-a", 30.0, clock=lambda: NOW - 100).beat()
        doc = status_mod.collect(b, now=NOW, lease=30.0)
        rec = next(r for r in doc["jobs"] if r["id"] == seen.job_id)
        assert rec["node"] == "station-a"
        assert rec["reason"] == "waits for station station-a, which is not running"
        assert [{k: n[k] for k in ("name", "heartbeat_at", "alive", "stopped")}
                for n in doc["nodes"]] == [{"name": "station-a", "heartbeat_at": NOW - 100,
                                            "alive": False, "stopped": False}]
        assert [r["id"] for r in status_mod.collect(b, now=NOW, node="station-b")["jobs"]] == []
        job = a.claim(NOW)
        assert job is not None and job.id == seen.job_id
    finally:
        a.close()
        b.close()


def test_sqlite_status_has_no_nodes(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'jobs.db'}")
    try:
        Fleet(store, "x", 30.0).beat()  # even if someone beats, SQLite shows no fleet
        assert status_mod.collect(store)["nodes"] == []
    finally:
        store.close()


def test_concurrent_claims_from_threads_never_share_a_job(url: str) -> None:
    seed = node_store(url, "seed")
    for i in range(60):
        queue_shared(seed, f"{i}.mov")
    claimed: list[int] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        store = node_store(url, f"station-{n % 3}")
        try:
            while (job := store.claim(NOW)) is not None:
                with lock:
                    claimed.append(job.id)
        finally:
            store.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(claimed) == sorted(set(claimed)) and len(claimed) == 60
    seed.close()


CLAIMER = """
import sys, time
from daemon.jobs.store import Store
store = Store.open(sys.argv[1]); store.set_node(sys.argv[2], ["nas"])
start = float(sys.argv[3])
while time.time() < start:
    time.sleep(0.005)
ids = []
while (job := store.claim(%r)) is not None:
    ids.append(job.id)
print(" ".join(map(str, ids)))
"""


def test_concurrent_claims_from_processes_never_share_a_job(pg: str) -> None:
    seed = node_store(pg, "seed")
    for i in range(150):
        queue_shared(seed, f"{i}.mov")
    seed.close()
    start = time.time() + 3.0  # all begin together, after their imports
    procs = [subprocess.Popen([sys.executable, "-c", CLAIMER % NOW, pg, f"p{n}", str(start)],
                              stdout=subprocess.PIPE, text=True, cwd=REPO) for n in range(4)]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    ids = [int(x) for out in outs for x in out.split()]
    assert len(ids) == 150 and len(set(ids)) == 150
    assert sum(1 for out in outs if out.split()) >= 2  # they did race


@contextlib.contextmanager
def listening(pg: str) -> Iterator[tuple[Store, Listener, threading.Event]]:
    """station-a's store, and a Listener on station-b's engine, connected, that sets the event
    when woken; closed at the end."""
    a, b = node_store(pg, "station-a"), node_store(pg, "station-b")
    woke = threading.Event()
    listener = Listener(b.engine, woke.set).start()
    try:
        assert listener.connected.wait(10)
        yield a, listener, woke
    finally:
        listener.close()
        a.close()
        b.close()


def test_notify_wakes_a_listener_within_a_second(pg: str) -> None:
    with listening(pg) as (a, listener, woke):
        assert not woke.wait(0.3)  # idle: nothing arrives
        t0 = time.monotonic()
        queue_shared(a, "a.mov")  # mark_ready commits with a NOTIFY
        assert woke.wait(1.0), "no wake-up within 1 s"
        assert time.monotonic() - t0 < 1.0
    assert not listener.alive()


def test_listener_reconnects_after_the_connection_is_killed(pg: str) -> None:
    with listening(pg) as (a, listener, woke):
        with a.engine.connect() as conn:  # what a database restart does to the connection
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                              "query LIKE 'LISTEN%' AND pid <> pg_backend_pid()"))
            conn.commit()
        assert woke.wait(10), "no catch-up wake-up after reconnecting"
        deadline = time.monotonic() + 10
        while not listener.connected.is_set() and time.monotonic() < deadline:
            time.sleep(0.05)
        woke.clear()
        queue_shared(a, "b.mov")
        assert woke.wait(2.0)


def test_migration_from_0002_fills_the_identity(tmp_path: Path) -> None:
    from daemon.jobs.engine import make_engine
    from daemon.jobs.schema import upgrade

    db = f"sqlite:///{tmp_path / 'jobs.db'}"
    engine = make_engine(db)
    upgrade(engine, "0002")
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO jobs (path, root, size, mtime_ns, state, force, attempts, "
            "next_attempt_at, bytes_sent, created_at, updated_at, refusals) VALUES "
            "('/w/jane/s/a.mov', '/w', 1, 2, 'done', 0, 1, 0, 0, 0, 0, 0)"))
    upgrade(engine)
    with engine.begin() as conn:
        row = conn.execute(text("SELECT watch, rel_path, owner, claim_no FROM jobs")).one()
        assert tuple(row) == ("/w", "jane/s/a.mov", "", 0)
        conn.execute(update(Node.__table__).values(host="x"))  # the table exists
    engine.dispose()
    store = Store.open(db)
    assert store.observe("/w/jane/s/a.mov", "/w", 1, 2, NOW).state is JobState.DONE
    store.close()
    assert Job.__table__.c.claim_no is not None
