"""Fleet mode at its edges, on a real PostgreSQL: a station's identity (two stations with one
name), the fence of a node whose beats fail, one clock (the database's) whatever the local
clock says, wake-ups only for claimable jobs, clean sign-off and `nodes forget`, config checks."""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time
import types
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from support import wait_for, write_config

from daemon import config as config_mod
from daemon import status as status_mod
from daemon.jobs import fleet as fleet_mod
from daemon.jobs.engine import PG_MAX_OVERFLOW, PG_POOL_SIZE, DatabaseUnavailable
from daemon.jobs.fleet import Fleet, NameTaken, parse_identity
from daemon.jobs.models import JobState, Node
from daemon.jobs.store import Ready, Store
from daemon.net.upload import Aborted
from daemon.service.parts import last_known
from daemon.web import StoreBackend
from daemon.web import backend as backend_mod
from daemon.work.turns import Turns

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def pg(pg_db: str) -> Iterator[str]:
    yield pg_db


def node_store(url: str, name: str, shared: tuple[str, ...] = ("nas",)) -> Store:
    store = Store.open(url)
    store.set_node(name, shared)
    return store


def ready() -> Ready:
    return Ready(size=10, mtime_ns=1, athlete_id="a" * 8, session_group_id="g" * 8,
                 file_name="x.mov", capture_time="2026-01-01T00:00:00.000Z",
                 camera_configuration="{}", movement_attributes="{}")


def queue(store: Store, path: str, root: str, now: float, share: str | None = None) -> int:
    seen = store.observe(path, root, 10, 1, now, share)
    assert store.mark_ready(seen.job_id, ready(), now)
    return seen.job_id


def test_a_second_station_with_a_live_name_is_refused(pg: str) -> None:
    a, b = node_store(pg, "station-1"), node_store(pg, "station-1")
    try:
        first = Fleet(a, "station-1", 3.0, host="rink-a")
        first.register()
        twin = Fleet(b, "station-1", 3.0, host="rink-b")
        with pytest.raises(NameTaken) as refused:
            twin.register()
        line = str(refused.value)
        assert "\n" not in line and "'station-1'" in line and "rink-a" in line, line
        assert isinstance(refused.value, DatabaseUnavailable)  # the CLI prints it in one line
        assert first.beat() == [] and first.lost is None  # the running one goes on
        # The same machine after a crash (same boot, its process gone) takes its name back.
        dead = subprocess.Popen(["true"])
        dead.wait()
        crashed = Fleet(b, "station-2", 3.0, host="rink-a")
        crashed.ident.update(boot="boot-1", pid=dead.pid)
        crashed._ident_text = json.dumps(crashed.ident, sort_keys=True)
        crashed.register()
        again = Fleet(b, "station-2", 3.0, host="rink-a")
        again.ident["boot"] = "boot-1"
        again.register()
        assert crashed.beat() == [] and crashed.lost and "rink-a" in crashed.lost
        with pytest.raises(NameTaken):  # another machine, while `again` runs
            Fleet(a, "station-2", 3.0, host="rink-b").register()
        # A cleanly stopped holder leaves its name free at once.
        first.sign_off()
        Fleet(a, "station-1", 3.0, host="rink-c").register()
    finally:
        a.close()
        b.close()


def test_the_fence_closes_before_another_node_may_take_over(pg: str) -> None:
    store = node_store(pg, "station-1")
    mono = [100.0]
    try:
        fleet = Fleet(store, "station-1", 3.0, monotonic=lambda: mono[0])
        fleet.register()
        epoch = fleet.epoch
        assert not fleet.fenced() and fleet.live(epoch)
        mono[0] += 1.9  # under two thirds of the lease since the last beat
        assert not fleet.fenced() and fleet.live(epoch)
        mono[0] += 0.2  # past two thirds: no upload starts or completes
        assert fleet.fenced() and not fleet.live(epoch)
        mono[0] += 6.0  # frozen (SIGSTOP) or cut off for a while; then a beat succeeds
        assert fleet.beat() == []
        assert not fleet.fenced()
        # What began before the gap stays abandoned: another node may hold it by now.
        assert not fleet.live(epoch) and fleet.live(fleet.epoch)
    finally:
        store.close()


def waiting_on_a_lock(store: Store) -> int:
    """How many statements wait for a row lock (a fresh transaction: pg_stat_activity is read
    once per transaction)."""
    with store.engine.connect() as conn:
        return int(conn.execute(text(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND query LIKE 'UPDATE nodes%'")).scalar_one())


def test_a_beat_that_lands_after_a_takeover_abandons_what_began_before(pg: str) -> None:
    """Issue 29, item 2: station-1's beat starts in time but hangs (its row is locked) past the
    fence while station-2 takes its job over; when it lands, the node is no longer fenced, but
    uploads begun before must stay abandoned: the epoch moves although the two beats' starts
    were close. Fails with the fence disabled (fenced() never, live() always, or a Turn that
    never checks it)."""
    a, b = node_store(pg, "station-1"), node_store(pg, "station-2")
    mono = [100.0]
    beat: list[list[int]] = []
    try:
        fleet = Fleet(a, "station-1", 3.0, monotonic=lambda: mono[0])
        fleet.register()  # a successful beat at 100
        job_id = queue(a, "/mnt/a/jane/x.mov", "/mnt/a", fleet.wall(), "nas")
        assert a.claim(fleet.wall()) is not None
        epoch = fleet.epoch  # the upload of this claim began at this epoch
        turn = Turns(1, fence=fleet).turn(threading.Event())
        turn.take()  # its send turn, as the pipeline takes it before the request
        other = Fleet(b, "station-2", 3.0)
        other.register()
        with b.engine.connect() as locker:
            locker.execute(text("SELECT 1 FROM nodes WHERE name = 'station-1' FOR UPDATE"))
            mono[0] = 101.9  # the next beat starts in time...
            hung = threading.Thread(target=lambda: beat.append(fleet.beat()))
            hung.start()
            wait_for(lambda: waiting_on_a_lock(b), 10, what="the beat to hang")
            # ...and hangs; station-2 takes the job over once station-1's lease ran out.
            wait_for(lambda: other.beat() == [job_id], 15, interval=0.3, what="a takeover")
            mono[0] = 103.2
            assert fleet.fenced() and not fleet.live(epoch)
            locker.rollback()  # the beat lands
            hung.join(10)
        assert beat == [[]]
        assert not fleet.fenced()  # 1.3 s after this beat's start: not fenced any more
        assert not fleet.live(epoch), "an upload from before the takeover could complete"
        with pytest.raises(Aborted):  # the pipeline's look just before the closing boundary
            turn.check()
        assert fleet.live(fleet.epoch)
    finally:
        a.close()
        b.close()


def test_uploads_holding_the_whole_pool_do_not_fence_a_healthy_node(pg: str) -> None:
    """Issue 29, item 2: the heartbeat has a connection of its own: with every connection of
    the shared pool held (busy uploads, say), a beat still lands at once."""
    store = node_store(pg, "station-1")
    fleet = Fleet(store, "station-1", 3.0)
    held = []
    landed = threading.Event()
    try:
        fleet.register()
        held = [store.engine.connect() for _ in range(PG_POOL_SIZE + PG_MAX_OVERFLOW)]
        for conn in held:
            conn.execute(text("SELECT 1"))
        beat = threading.Thread(target=lambda: (fleet.beat(), landed.set()))
        beat.start()
        assert landed.wait(5), "the beat waited for a connection of the shared pool"
        assert not fleet.fenced()
    finally:
        for conn in held:
            conn.close()
        landed.wait(40)
        fleet.close()
        store.close()


def test_one_clock_whatever_the_local_clock_says(pg: str) -> None:
    a, b = node_store(pg, "station-a"), node_store(pg, "station-b")
    try:
        right = Fleet(a, "station-a", 3.0)
        right.register()
        behind = Fleet(b, "station-b", 3.0, local=lambda: time.time() - 3600)
        behind.register()
        assert abs(behind.wall() - b.db_now()) < 2.0
        job_id = queue(a, "/mnt/a/jane/x.mov", "/mnt/a", right.wall(), "nas")
        assert b.next_due(behind.wall()) is None and b.any_due(behind.wall())
        claimed = b.claim(behind.wall())  # on its own clock it would wait an hour
        assert claimed is not None and claimed.id == job_id
        # `status` judges leases on the database clock too (the local clock is an hour off).
        doc = status_mod.collect(b, lease=3.0)
        assert {n["name"]: n["alive"] for n in doc["nodes"]} == {"station-a": True,
                                                                 "station-b": True}
    finally:
        a.close()
        b.close()



def test_the_console_and_retry_use_the_database_clock(pg: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 29.4: a station whose own clock runs an hour ahead. Its console must not call a
    live station dead, and a retry from it (CLI or console) must be due at once by the clock
    the fleet's claims read, not an hour later."""
    a, b = node_store(pg, "station-a"), node_store(pg, "station-b")
    real = time.time
    ahead = types.SimpleNamespace(time=lambda: real() + 3600, monotonic=time.monotonic)
    try:
        Fleet(a, "station-a", 3.0).register()  # beats by the database's clock
        monkeypatch.setattr(backend_mod, "time", ahead)  # the console's local clock
        console = StoreBackend(b, {}, lease=3.0)
        for doc in (console.status(), console.status(state="failed", page=1)):
            assert {n["name"]: n["alive"] for n in doc["nodes"]} == {"station-a": True}
        first, second = (queue(a, f"/mnt/a/jane/{n}.mov", "/mnt/a", a.db_now(), "nas")
                         for n in ("x", "y"))
        for job_id in (first, second):
            a.fail(job_id, [JobState.QUEUED], a.db_now(), "the server refused it")
        assert b.retry([first], ahead.time()) == [first]  # what `retry` passes: its clock
        assert console.retry(second)
        for job_id in (first, second):
            assert abs(b.get(job_id).next_attempt_at - b.db_now()) < 2.0
        claimed = {b.claim(b.db_now()), b.claim(b.db_now())}
        assert {j.id for j in claimed if j is not None} == {first, second}
    finally:
        a.close()
        b.close()

def test_wake_ups_only_for_jobs_this_node_may_claim(pg: str) -> None:
    a, b = node_store(pg, "station-a"), node_store(pg, "station-b", shared=())
    try:
        now = a.db_now()
        queue(a, "/srv/local/jane/x.mov", "/srv/local", now)  # station-a's own folder
        queue(a, "/mnt/a/jane/y.mov", "/mnt/a", now + 60, "nas")
        assert a.any_due(now + 1) and a.next_due(now + 1) == now + 60
        assert not b.any_due(now + 1) and b.next_due(now + 1) is None
        assert b.claim(now + 1) is None
    finally:
        a.close()
        b.close()


def test_a_stopped_station_shows_stopped_and_can_be_forgotten(pg: str) -> None:
    a, b = node_store(pg, "station-a"), node_store(pg, "station-b")
    try:
        fa, fb = Fleet(a, "station-a", 3.0), Fleet(b, "station-b", 3.0)
        fa.register()
        fb.register()
        with pytest.raises(DatabaseUnavailable, match="running"):
            fleet_mod.forget(a, "station-b", 3.0)
        fb.sign_off()
        doc = status_mod.collect(a, lease=3.0)
        assert "station-a (running), station-b (stopped)" in status_mod.render(doc)
        assert fleet_mod.forget(a, "station-b", 3.0) == "forgot station station-b"
        assert [n["name"] for n in a.nodes(a.db_now(), 3.0)] == ["station-a"]
        with pytest.raises(DatabaseUnavailable, match="no station"):
            fleet_mod.forget(a, "station-b", 3.0)
        assert parse_identity("plain-host") == {"host": "plain-host"}  # older rows
        assert Node.__table__.c.host is not None
    finally:
        a.close()
        b.close()


def test_config_refuses_twin_shared_names_and_long_node_names(tmp_path: Path) -> None:
    (tmp_path / "w").mkdir()
    (tmp_path / "n1").mkdir()
    (tmp_path / "n2").mkdir()
    twins = write_config(tmp_path / "twins.toml", watch=tmp_path / "w", db=tmp_path / "j.db",
                         extra=''.join(f'[[watch]]\npath = "{tmp_path / d}"\nshared = true\n'
                                       f'name = "nas"\n' for d in ("n1", "n2")))
    with pytest.raises(config_mod.ConfigError) as err:
        config_mod.load(str(twins))
    assert str(twins) in str(err.value) and "[watch #3] name" in str(err.value)
    long = write_config(tmp_path / "long.toml", watch=tmp_path / "w", db=tmp_path / "j.db",
                        extra=f'[node]\nname = "{"s" * 65}"\n')
    with pytest.raises(config_mod.ConfigError) as err:
        config_mod.load(str(long))
    assert str(long) in str(err.value) and "[node] name" in str(err.value)


def test_psycopg_pin_allows_only_versions_with_notifies_timeout() -> None:
    text = (REPO / "pyproject.toml").read_text()
    pins = re.findall(r'"psycopg\[binary\]([^"]*)"', text)
    assert len(pins) == 2 and all(p.startswith(">=3.2") for p in pins), pins


def test_metrics_serve_the_last_known_counts_while_the_database_is_away() -> None:
    answers: list[object] = [{"queued": 3}, OSError("server closed the connection")]

    def counts() -> dict[str, int]:
        got = answers.pop(0) if len(answers) > 1 else answers[0]
        if isinstance(got, Exception):
            raise got
        return got  # type: ignore[return-value]

    cached = last_known(counts)
    assert cached() == {"queued": 3}
    assert cached() == {"queued": 3}  # the outage: what is known, not an error
    assert os.environ is not None
