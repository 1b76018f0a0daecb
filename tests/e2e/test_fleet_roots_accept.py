"""`roots accept` reaches a running PostgreSQL node (issue 29 item 3): the node's own folder
moved to new storage where its first waiting files are not (so they cannot prove it is the
same folder); a person accepts it, and the running node takes it without a restart."""

from __future__ import annotations

import shutil
from pathlib import Path

from fleet_support import fleet_status, node_config
from support import Sandbox, cli, make_movie, start_daemon, wait_for

from daemon.jobs.roots import SAMPLE

NOT_THERE = "is not there (unmounted?)"


def _states(cfg: Path) -> dict[str, str]:
    return {Path(j["path"]).name: j["state"] for j in fleet_status(cfg)["jobs"]}


def _attention(cfg: Path) -> str:
    return " ".join(n["message"] for n in fleet_status(cfg)["notices"].values())


def test_roots_accept_reaches_a_running_node(tmp_path: Path, pg_db: str) -> None:
    box = Sandbox(tmp_path / "sandbox").start()
    local = tmp_path / "local"
    (local / "jane").mkdir(parents=True)
    cfg = node_config(tmp_path, "station-1", None, pg_db, box.base_url,
                      upload="poll_seconds = 1.0\nallow_duplicates = true", local=local,
                      extra="[watching]\nrescan_seconds = 1.0")
    # Paused before the node starts: a running node reads the pause within seconds, and a
    # file claimed meanwhile would never count as queued.
    assert cli("pause", "--config", str(cfg)).returncode == 0
    daemon = start_daemon(tmp_path, cfg)
    try:
        movie = make_movie(tmp_path / "src.mov", frames=1)
        # The first SAMPLE waiting files (by job id) are the ones the new storage lacks.
        lost = [f"lost-{i:02d}.mov" for i in range(SAMPLE)]
        for name in lost:
            shutil.copy(movie, local / "jane" / name)
        wait_for(lambda: sum(s == "queued" for s in _states(cfg).values()) == SAMPLE, 60,
                 interval=0.5, what="the first files queued")
        shutil.copy(movie, local / "jane" / "kept.mov")
        wait_for(lambda: _states(cfg).get("kept.mov") == "queued", 30, interval=0.5,
                 what="kept.mov queued")
        # New storage at the same path, holding only kept.mov: another folder to the node.
        local.rename(tmp_path / "old-storage")
        (local / "jane").mkdir(parents=True)
        shutil.copy(movie, local / "jane" / "kept.mov")
        wait_for(lambda: NOT_THERE in _attention(cfg), 30, interval=0.5,
                 what="ATTENTION: the folder is not there")
        assert cli("resume", "--config", str(cfg)).returncode == 0
        out = cli("roots", "accept", str(local), "--config", str(cfg))
        assert out.returncode == 0 and "accepted" in out.stdout, out.stdout + out.stderr
        # No state file, no signal: only the database can tell the running node.
        wait_for(lambda: _states(cfg).get("kept.mov") == "done", 30, interval=0.5,
                 what="kept.mov uploaded from the accepted folder")
        assert len(box.uploads_for("kept.mov")) == 1
        wait_for(lambda: NOT_THERE not in _attention(cfg), 15, interval=0.5,
                 what="the ATTENTION to clear")
        assert daemon.has_event("watch.root_back")
    finally:
        daemon.stop()
        box.stop()
