"""Issue 32: following through faults, against the built-in sandbox. A key refused (401/403)
when asking about captures pauses following with one `analysis_credentials` notice and no loop
of reads while uploads go on, and following resumes once the key works; a fleet node killed
while it holds the follow leases leaves its captures to the other node."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

from support import Proc, Sandbox, jobs_by_name, start_daemon, status, wait_for
from test_analysis import ATHLETE, FIRST_LOOK, analysis, drop, final, station

REFUSED = (401, 403)


def refused_reads(sandbox: Sandbox) -> list[dict[str, Any]]:
    return [r for r in sandbox.state()["reads"] if r["answer"] in REFUSED]


def done(config: Path, name: str) -> bool:
    return jobs_by_name(config).get(name, {}).get("state") == "done"


def test_refused_reads_pause_following_not_uploads(tmp_path: Path, sandbox: Sandbox,
                                                   procs: list[Proc]) -> None:
    """A key Uplift lets create captures but not read them (403 on GET /captures): one notice,
    a read per wake-up rather than a loop, uploads go on; the key fixed, the next upload's wake
    resumes following and clears the notice."""
    captures, config = station(tmp_path, sandbox)
    procs.append(daemon := start_daemon(tmp_path, config))
    drop(tmp_path, captures / ATHLETE, "first.mov")
    wait_for(lambda: analysis(config, "first.mov"), 60, what="the upload confirmed")
    refusal = [{"status": 403}] * 100
    sandbox.faults(capture_read=refusal, capture_list=refusal)
    wait_for(lambda: "analysis_credentials" in status(config)["notices"], FIRST_LOOK + 30,
             what="the analysis_credentials notice")
    assert len(refused_reads(sandbox)) == 1

    drop(tmp_path, captures / ATHLETE, "second.mov")  # uploads go on
    wait_for(lambda: done(config, "second.mov"), 60, what="an upload while paused")
    # The second capture falls due FIRST_LOOK after its upload: past that, a follower that
    # looped on the refusal would have sent dozens of reads (max_rate 2/s); a paused one sent
    # one, when the upload's done woke it.
    uploaded = time.monotonic()
    wait_for(lambda: time.monotonic() - uploaded > FIRST_LOOK + 5, FIRST_LOOK + 10,
             what="the second capture's first look to pass")
    assert len(refused_reads(sandbox)) <= 2
    assert [e for e in daemon.events() if e.get("event") == "analysis.paused"][1:] == []
    assert analysis(config, "first.mov")["status"] == "processing"
    assert analysis(config, "second.mov")["status"] == "processing"

    sandbox.faults(capture_read=[], capture_list=[])  # the key fixed at Uplift
    drop(tmp_path, captures / ATHLETE, "third.mov")
    for name in ("first.mov", "second.mov"):
        got = wait_for(lambda n=name: final(config, n), 60, what=f"{name} analysed")
        assert got["status"] == "completed"
    wait_for(lambda: "analysis_credentials" not in status(config)["notices"], 30,
             what="the notice to clear")
    assert len(refused_reads(sandbox)) <= 2


def test_rotated_key_pauses_following_until_the_new_key(tmp_path: Path, sandbox: Sandbox,
                                                         procs: list[Proc]) -> None:
    """The key rotated at Uplift (every request 401): following pauses with one notice and no
    loop of reads; the new key in the token file and a reload, following resumes."""
    from support import set_config_key

    captures, config = station(tmp_path, sandbox)
    token_file = tmp_path / "token"
    token_file.write_text(sandbox.token + "\n")
    set_config_key(config, "api", "token_file", f'"{token_file}"')
    procs.append(daemon := start_daemon(tmp_path, config, token=""))
    drop(tmp_path, captures / ATHLETE, "swing.mov")
    wait_for(lambda: analysis(config, "swing.mov"), 60, what="the upload confirmed")
    sandbox.set_token("rotated-token-7e21")
    wait_for(lambda: "analysis_credentials" in status(config)["notices"], FIRST_LOOK + 30,
             what="the analysis_credentials notice")
    paused = time.monotonic()
    wait_for(lambda: time.monotonic() - paused > 10, 15, what="ten seconds paused")
    assert len(refused_reads(sandbox)) == 1  # no loop of reads
    token_file.write_text("rotated-token-7e21\n")
    daemon.signal(signal.SIGHUP)
    got = wait_for(lambda: final(config, "swing.mov"), 30, what="analysed with the new key")
    assert got["status"] == "completed"
    wait_for(lambda: "analysis_credentials" not in status(config)["notices"], 30,
             what="the notice to clear")


def test_a_dead_nodes_followed_captures_are_taken_over(tmp_path: Path, sandbox: Sandbox,
                                                       own_pg: Any, procs: list[Proc]) -> None:
    """Two nodes on PostgreSQL; the one holding the follow leases (its reads held up by a slow
    API) is SIGKILLed. Its lease is aged in the database (it stands for the 300 s wait; the
    other node's own timer is set to the lease's real end) and the other node woken by a
    reload: it claims the captures and follows them to completed."""
    import psycopg
    from fleet_support import node_config

    db_url = own_pg.create_db("fleet")
    nodes = {}
    for name in ("station-1", "station-2"):
        local = tmp_path / f"local-{name}"
        (local / ATHLETE).mkdir(parents=True)
        config = node_config(tmp_path, name, None, db_url, sandbox.base_url,
                             upload="concurrency = 1", local=local)
        procs.append(proc := start_daemon(tmp_path, config, name=f"{name}.log"))
        nodes[name] = (config, proc)
    sandbox.faults(analysis_seconds=3600)
    names = [f"clip-{k}.mov" for k in range(3)]
    for n in names:
        drop(tmp_path, tmp_path / "local-station-1" / ATHLETE, n)
    config = nodes["station-1"][0]
    wait_for(lambda: all(analysis(config, n) for n in names), 60, what="3 uploads confirmed")
    sandbox.faults(latency=30.0)  # the first look's reads: a node holds its claim 30 s

    def holder() -> str | None:
        with psycopg.connect(own_pg.url("fleet"), autocommit=True) as conn:
            rows = conn.execute("SELECT DISTINCT analysis_node FROM jobs WHERE "
                                "analysis_lease IS NOT NULL").fetchall()
        return rows[0][0] if len(rows) == 1 else None

    dead = wait_for(holder, FIRST_LOOK + 30, interval=0.5, what="a node to claim the looks")
    nodes[dead][1].signal(signal.SIGKILL)
    nodes[dead][1].popen.wait(10)
    sandbox.faults(latency=None, analysis_seconds=0)
    with psycopg.connect(own_pg.url("fleet"), autocommit=True) as conn:
        aged = conn.execute("UPDATE jobs SET analysis_lease = analysis_lease - 3600 WHERE "
                            "analysis_node = %s AND analysis_status = 'processing'",
                            (dead,)).rowcount
    assert aged >= 1  # the captures due at the kill (their uploads' first looks)
    alive = next(n for n in nodes if n != dead)
    nodes[alive][1].signal(signal.SIGHUP)
    config = nodes[alive][0]
    for n in names:
        got = wait_for(lambda n=n: final(config, n), 60, what=f"{n} taken over")
        assert got["status"] == "completed"
    assert not nodes[dead][1].has_event("analysis.final")
    assert len([e for e in nodes[alive][1].events() if e.get("event") == "analysis.final"]) == 3
