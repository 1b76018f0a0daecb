"""A node whose share is not mounted (issue 20 item 4), on a real PostgreSQL: it does not claim
the shared jobs (today it finds no file and skips them for the whole fleet), `status` says
"share nas not mounted here", and a node that has the share mounted uploads each file once."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

from fleet_support import bind_mounts, fleet_status, node_config
from support import Proc, Sandbox, cli, make_movie, start_daemon, wait_for

FILES = 4
UPLOAD = "poll_seconds = 1.0"
WATCHING = "[watching]\npoll_interval = 0.3\n"


def test_a_node_without_the_share_leaves_its_jobs_to_the_others(
        tmp_path: Path, pg_db: str) -> None:
    nas = tmp_path / "nas"
    (nas / "jane").mkdir(parents=True)
    mounts = [tmp_path / "mnt-1", tmp_path / "mnt-2"]
    with bind_mounts(nas, mounts):
        box = Sandbox(tmp_path / "sandbox").start()
        procs: list[Proc] = []
        try:
            cfgs = [node_config(tmp_path, f"station-{i + 1}", m, pg_db, box.base_url,
                                upload=UPLOAD, extra=WATCHING)
                    for i, m in enumerate(mounts)]
            # Both stations see the files (each records its mount); uploads paused fleet-wide
            # before they start (a pause reaches a running station's gate within a second).
            assert cli("pause", "--config", str(cfgs[0])).returncode == 0
            procs = [start_daemon(tmp_path, c, name=f"s{i}.log") for i, c in enumerate(cfgs)]
            for k in range(FILES):
                make_movie(nas / "jane" / f"f{k}.mov", frames=1)
            def queued() -> bool:
                jobs = fleet_status(cfgs[0])["jobs"]
                return len(jobs) == FILES and {j["state"] for j in jobs} == {"queued"}
            wait_for(queued, 30, interval=0.5, what="the shared files queued")
            for p in procs:
                assert p.stop() == 0
            # station-1's share drops out (its bare mount point is left); it runs alone.
            subprocess.run(["umount", str(mounts[0])], check=True)
            assert cli("resume", "--config", str(cfgs[0])).returncode == 0
            procs = [start_daemon(tmp_path, cfgs[0], name="s0-again.log")]
            deadline = time.monotonic() + 2.5
            while time.monotonic() < deadline:  # it would claim (and skip) them at once
                states = {j["state"] for j in fleet_status(cfgs[0])["jobs"]}
                assert states == {"queued"}, fleet_status(cfgs[0])["jobs"]
                time.sleep(0.5)
            assert box.state()["uploads"] == []
            text = cli("status", "--config", str(cfgs[0])).stdout
            assert "share nas not mounted here" in text, text
            # station-2, which has it mounted, uploads every file, once.
            procs.append(start_daemon(tmp_path, cfgs[1], name="s1-again.log"))
            def done() -> list[dict[str, Any]] | None:
                jobs = fleet_status(cfgs[0])["jobs"]
                return jobs if {j["state"] for j in jobs} == {"done"} else None
            jobs = wait_for(done, 30, interval=0.5, what="station-2 to upload the shared files")
            assert {j["node"] for j in jobs} == {"station-2"}
            uploads = [u["key"].rsplit("/", 1)[1] for u in box.state()["uploads"]]
            assert sorted(uploads) == [f"f{k}.mov" for k in range(FILES)]
            for p in procs:
                assert p.stop() == 0
        finally:
            for p in procs:
                p.kill()
            box.stop()
