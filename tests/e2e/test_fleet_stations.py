"""Fleet mode at its edges, end to end: daemon processes on one PostgreSQL, one shared folder.
A node stopping with an upload in flight keeps its lease until that upload drained; a node
frozen (SIGSTOP) or cut off from the database (its own network namespace, the link to
PostgreSQL down) mid-upload for three leases lets no upload complete once another took over;
a second station with a running station's name is refused; a shared folder added by SIGHUP is
claimed without a restart. Every file is uploaded exactly once."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fleet_support import assert_stored_once, node_config
from pgserver import PgServer
from support import Proc, Sandbox, cli, make_movie, set_config_key, start_daemon, wait_for

UPLOAD = "concurrency = 1\npoll_seconds = 1.0\nshutdown_timeout = 20.0"


@pytest.fixture(autouse=True)
def stored_once(own_pg: PgServer, tmp_path: Path) -> Iterator[None]:
    """The SQL check after each test, once its daemons are stopped (fleet_support); own_pg
    is set up first, so its server is still running here."""
    yield
    assert_stored_once(own_pg, tmp_path / "sandbox" / "received")


def job(config: Path, name: str) -> dict[str, Any]:
    out = cli("status", "--json", "--all", "--config", str(config))
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    found = [j for j in doc["jobs"] if j["path"].endswith("/" + name)]
    return {**(found[0] if found else {}), "_nodes": doc["nodes"]}


def node_a_uploading(tmp_path: Path, pg: PgServer, box: Sandbox, procs: list[Proc],
                     name: str) -> Path:
    """node-a and node-b on a fresh fleet database, both seeing the share `nas`; node-a started
    (into `procs`) and uploading `name` from it slowly: about 5 s for the file, longer than the
    lease. Returns node-b's config."""
    db_url = pg.create_db("fleet")
    nas = tmp_path / "nas" / "jane"
    nas.mkdir(parents=True)
    a = node_config(tmp_path, "node-a", nas.parent, db_url, box.base_url, upload=UPLOAD)
    b = node_config(tmp_path, "node-b", nas.parent, db_url, box.base_url, upload=UPLOAD)
    box.faults(upload_rate=100_000)
    procs.append(start_daemon(tmp_path, a, name="a.log"))
    make_movie(nas / name, frames=10)
    wait_for(lambda: procs[0].has_event("upload.started"), 30, what="node-a uploading")
    return b


def node_b_takes_over(tmp_path: Path, box: Sandbox, procs: list[Proc], b: Path,
                      name: str) -> None:
    """node-b started (into `procs`, after node-a) takes `name` over from node-a, which can
    no longer renew its lease, and uploads it at full speed; then uploads are slow again
    (100 KB/s) for what node-a does next."""
    procs.append(start_daemon(tmp_path, b, name="b.log"))
    wait_for(lambda: procs[1].has_event("fleet.takeover"), 30, what="node-b takes over")
    box.faults(upload_rate=None)
    wait_for(lambda: job(b, name).get("node") == "node-b" and
             job(b, name).get("state") == "done", 30, what="node-b uploads it")
    box.faults(upload_rate=100_000)


def uploads(box: Sandbox, name: str) -> int:
    return len(box.uploads_for(name))


def test_stopping_keeps_the_lease_until_the_upload_drained(
        tmp_path: Path, own_pg: PgServer, sandbox: Sandbox, procs: list[Proc]) -> None:
    b = node_a_uploading(tmp_path, own_pg, sandbox, procs, "drain.mov")
    procs.append(start_daemon(tmp_path, b, name="b.log"))
    # A second station under a running station's name is refused, in one line.
    twin = cli("run", "--config", str(b), env={"UPLIFT_API_TOKEN": sandbox.token})
    assert twin.returncode == 1, twin.stderr
    refusal = twin.stderr.strip().splitlines()[-1]
    assert "'node-b' is in use by a running station on" in refusal, twin.stderr
    procs[0].signal(signal.SIGTERM)  # drains its upload: ~5 s, beyond the lease
    assert procs[0].popen.wait(30) == 0
    wait_for(lambda: job(b, "drain.mov").get("state") == "done", 30, what="done")
    assert uploads(sandbox, "drain.mov") == 1
    assert job(b, "drain.mov")["node"] == "node-a"
    assert not procs[1].has_event("fleet.takeover")
    stations = {n["name"]: n for n in job(b, "drain.mov")["_nodes"]}
    assert stations["node-a"]["stopped"] and not stations["node-a"]["alive"]
    out = cli("status", "--config", str(b))
    assert "node-a (stopped)" in out.stdout, out.stdout


def test_a_frozen_node_completes_nothing_another_took_over(
        tmp_path: Path, own_pg: PgServer, sandbox: Sandbox, procs: list[Proc]) -> None:
    b = node_a_uploading(tmp_path, own_pg, sandbox, procs, "frozen.mov")
    procs[0].signal(signal.SIGSTOP)  # a VM paused mid-upload
    node_b_takes_over(tmp_path, sandbox, procs, b, "frozen.mov")
    procs[0].signal(signal.SIGCONT)  # awake: its body must not reach the boundary
    procs[0].signal(signal.SIGTERM)
    assert procs[0].popen.wait(30) == 0
    assert uploads(sandbox, "frozen.mov") == 1


def test_a_shared_folder_added_by_sighup_is_claimed(
        tmp_path: Path, own_pg: PgServer, sandbox: Sandbox, procs: list[Proc]) -> None:
    db_url = own_pg.create_db("fleet")
    nas = tmp_path / "nas" / "jane"
    nas.mkdir(parents=True)
    plain = node_config(tmp_path, "node-a", None, db_url, sandbox.base_url,  # no share yet
                        upload=UPLOAD)
    proc = start_daemon(tmp_path, plain, name="a.log")
    procs.append(proc)
    node_config(tmp_path, "node-a", nas.parent, db_url, sandbox.base_url,  # the same file
                upload=UPLOAD)
    proc.signal(signal.SIGHUP)
    wait_for(lambda: proc.has_event("config.reloaded"), 10, what="reloaded")
    make_movie(nas / "added.mov", frames=1)
    wait_for(lambda: uploads(sandbox, "added.mov") == 1, 20, what="the shared file uploaded")
    assert proc.stop() == 0


RELAY = """
import socket, sys, threading
srv = socket.create_server(("127.0.0.1", int(sys.argv[1])))
def pipe(a, b):
    try:
        while (d := a.recv(65536)):
            b.sendall(d)
    except OSError:
        pass
    for s in (a, b):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
while True:
    c, _ = srv.accept()
    u = socket.create_connection((sys.argv[2], int(sys.argv[1])))
    threading.Thread(target=pipe, args=(c, u), daemon=True).start()
    threading.Thread(target=pipe, args=(u, c), daemon=True).start()
"""


def sh(*cmd: str) -> None:
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {out.stderr.strip()}")


@pytest.fixture
def netns() -> Iterator[str]:
    """A network namespace with two links to the root namespace: 10.200.1.0/30 to the
    database, 10.200.2.0/30 to the storage (only addresses inside namespaces made here)."""
    import os

    ns, tag = f"upl{os.getpid() % 100000}", os.getpid() % 100000
    try:
        sh("ip", "netns", "add", ns)
    except (RuntimeError, OSError) as exc:
        pytest.skip(f"ip netns is not permitted here: {exc}")
    try:
        for n, link in ((1, f"udb{tag}"), (2, f"ust{tag}")):
            sh("ip", "link", "add", link, "type", "veth", "peer", "name", f"{link}p",
               "netns", ns)
            sh("ip", "addr", "add", f"10.200.{n}.1/30", "dev", link)
            sh("ip", "link", "set", link, "up")
            sh("ip", "-n", ns, "addr", "add", f"10.200.{n}.2/30", "dev", f"{link}p")
            sh("ip", "-n", ns, "link", "set", f"{link}p", "up")
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        yield ns
    finally:
        for link in (f"udb{tag}", f"ust{tag}"):
            subprocess.run(["ip", "link", "del", link], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def test_a_node_cut_off_from_the_database_completes_nothing(tmp_path: Path, own_pg: PgServer,
                                                           netns: str) -> None:
    """The node reaches the storage but not PostgreSQL for three leases, mid-upload."""
    import os

    tag = os.getpid() % 100000
    with (own_pg.data / "pg_hba.conf").open("a") as hba:
        hba.write("host all postgres 10.200.1.0/30 trust\n")
    own_pg.execute("ALTER SYSTEM SET listen_addresses = '127.0.0.1,10.200.1.1'")
    own_pg.restart()
    box = Sandbox(tmp_path / "sandbox")
    box.proc.args += ["--host", "10.200.2.1"]
    box.start()
    port = box.base_url.rsplit(":", 1)[1].split("/")[0]
    # The daemon talks plain http to loopback only: a relay on 127.0.0.1 in each namespace.
    relays = [subprocess.Popen([sys.executable, "-c", RELAY, port, "10.200.2.1"]),
              subprocess.Popen(["ip", "netns", "exec", netns, sys.executable, "-c", RELAY,
                                port, "10.200.2.1"])]
    procs: list[Proc] = []
    try:
        from daemon.sandbox.endpoints import BUCKET

        local_api = f"http://127.0.0.1:{port}/v1"
        wait_for(lambda: subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-c",
                                         f"import socket; socket.create_connection(('127.0.0.1'"
                                         f", {port}), 1)"]).returncode == 0, 10,
                 what="the relays")
        box.faults(upload_rate=100_000, upload_url=f"http://127.0.0.1:{port}/s3/{BUCKET}")
        db_url = own_pg.create_db("fleet")
        nas = tmp_path / "nas" / "jane"
        nas.mkdir(parents=True)
        a = node_config(tmp_path, "node-a", nas.parent,
                        db_url.replace("127.0.0.1", "10.200.1.1"), local_api, upload=UPLOAD)
        # node-a paces its own body (a relay in between would otherwise take the whole file
        # at once, so its closing boundary would be written before the cut).
        set_config_key(a, "upload", "bandwidth_limit", '"100KiB/s"')
        b = node_config(tmp_path, "node-b", nas.parent, db_url, local_api, upload=UPLOAD)
        cut = Proc([], tmp_path / "a.log")
        log = open(cut.log_path, "ab")  # noqa: SIM115
        cut.popen = subprocess.Popen(
            ["ip", "netns", "exec", netns, sys.executable, "-m", "daemon", "run", "--config",
             str(a)], stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "UPLIFT_API_TOKEN": box.token})
        log.close()
        procs.append(cut)
        wait_for(lambda: cut.has_event("daemon.ready"), 30, what="node-a ready")
        make_movie(nas / "cut.mov", frames=10)
        wait_for(lambda: cut.has_event("upload.started"), 30, what="node-a uploading")
        # Cut once the table shows it uploading: from then on only the fence stops node-a
        # (before, its own `uploading` write would wait for the database and fail).
        wait_for(lambda: job(b, "cut.mov").get("state") == "uploading", 30,
                 what="uploading recorded")
        sh("ip", "link", "set", f"udb{tag}", "down")
        node_b_takes_over(tmp_path, box, procs, b, "cut.mov")
        sh("ip", "link", "set", f"udb{tag}", "up")
        cut.signal(signal.SIGTERM)
        cut.popen.wait(40)
        assert uploads(box, "cut.mov") == 1
    finally:
        for p in procs:
            p.kill()
        for r in relays:
            r.kill()
            r.wait()
        box.stop()
