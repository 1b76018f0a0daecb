"""A watch folder that drops out (issue 19 item 1): a real bind mount, unmounted while files
wait in it, then mounted again. Nothing is skipped; each file is uploaded once, after it is
back. The same with the daemon started while the folder is unmounted."""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import (
    Proc,
    Sandbox,
    cli,
    make_movie,
    start_daemon,
    wait_for,
    write_config,
)

NOT_THERE = "is not there (unmounted?)"


def mount(source: Path, target: Path) -> None:
    out = subprocess.run(["mount", "--bind", str(source), str(target)], capture_output=True,
                         text=True)
    if out.returncode != 0:
        pytest.skip(f"cannot bind-mount here: {out.stderr.strip()}")


def umount(target: Path) -> None:
    subprocess.run(["umount", str(target)], check=True, capture_output=True)


@contextlib.contextmanager
def mounted(source: Path, target: Path) -> Iterator[None]:
    target.mkdir(parents=True, exist_ok=True)
    mount(source, target)
    try:
        yield
    finally:
        while subprocess.run(["umount", "-l", str(target)], capture_output=True).returncode == 0:
            pass  # every layer a failed test may have left


def full_status(config: Path) -> dict[str, Any]:
    import json

    out = cli("status", "--json", "--all", "--config", str(config))
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def by_name(config: Path) -> dict[str, dict[str, Any]]:
    return {Path(j["path"]).name: j for j in full_status(config)["jobs"]}


def attention(config: Path) -> str:
    return " ".join(n["message"] for n in full_status(config)["notices"].values())


def stays(check: Any, seconds: float, what: str) -> None:
    """`check` holds for `seconds` (a bounded look for something that must not happen)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert check(), what
        time.sleep(0.5)


def none_skipped(config: Path) -> bool:
    return not [j for j in full_status(config)["jobs"] if j["state"] == "skipped"]


@pytest.fixture
def station(tmp_path: Path) -> Iterator[tuple[Path, Path, Path, Sandbox]]:
    storage, watch = tmp_path / "storage", tmp_path / "watch"
    (storage / "jane").mkdir(parents=True)
    (storage / "bob").mkdir()  # an athlete the config does not name: its file is held
    box = Sandbox(tmp_path / "sandbox").start()
    cfg = write_config(tmp_path / "c.toml", watch=watch, db=tmp_path / "jobs.db",
                       base_url=box.base_url, settle=0.3,
                       athletes={"jane": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"},
                       upload="poll_seconds = 1.0",
                       extra="[watching]\nrescan_seconds = 1.0")
    try:
        with mounted(storage, watch):
            yield cfg, storage, watch, box
    finally:
        box.stop()


def _files(watch: Path) -> None:
    make_movie(watch / "jane" / "a.mov", frames=2)
    make_movie(watch / "jane" / "b.mov", frames=2)
    make_movie(watch / "bob" / "c.mov", frames=2)


def _waiting(cfg: Path) -> None:
    def ready() -> bool:
        jobs = by_name(cfg)
        return [jobs.get(n, {}).get("state") for n in ("a.mov", "b.mov", "c.mov")] == \
            ["queued", "queued", "pending"]
    wait_for(ready, 30, interval=0.5, what="a, b queued (paused) and c held")


def _uploaded_once(box: Sandbox, cfg: Path) -> None:
    def done() -> bool:
        jobs = by_name(cfg)
        return jobs.get("a.mov", {}).get("state") == "done" and \
            jobs.get("b.mov", {}).get("state") == "done"
    wait_for(done, 30, interval=0.5, what="a and b uploaded once the folder is back")
    for name in ("a.mov", "b.mov"):
        assert len(box.uploads_for(name)) == 1, box.state()["uploads"]
    c = by_name(cfg)["c.mov"]
    assert c["state"] == "pending" and "bob" in (c["reason"] or ""), c  # held, for its athlete
    assert none_skipped(cfg)
    wait_for(lambda: NOT_THERE not in attention(cfg), 15, interval=0.5,
             what="the ATTENTION to clear")


def test_folder_unmounted_while_files_wait_then_back(
        station: tuple[Path, Path, Path, Sandbox], tmp_path: Path) -> None:
    cfg, storage, watch, box = station
    daemon: Proc = start_daemon(tmp_path, cfg)
    try:
        assert cli("pause", "--config", str(cfg)).returncode == 0
        _files(watch)
        _waiting(cfg)
        umount(watch)  # the bare mount point is left: another folder, empty
        assert cli("resume", "--config", str(cfg)).returncode == 0  # the claim finds no file
        stays(lambda: none_skipped(cfg), 2.0, "a file was skipped while its folder was away")
        wait_for(lambda: NOT_THERE in attention(cfg), 20, interval=0.5,
                 what="ATTENTION: folder not there")
        def all_wait() -> bool:
            jobs = by_name(cfg)
            return all(jobs[n]["state"] == "pending" and NOT_THERE in (jobs[n]["reason"] or "")
                       for n in ("a.mov", "b.mov", "c.mov"))
        wait_for(all_wait, 20, interval=0.5, what="every job pending with the folder's reason")
        assert box.state()["uploads"] == []
        mount(storage, watch)
        _uploaded_once(box, cfg)
    finally:
        daemon.stop()


def test_daemon_started_while_the_folder_is_unmounted(
        station: tuple[Path, Path, Path, Sandbox], tmp_path: Path) -> None:
    cfg, storage, watch, box = station
    daemon = start_daemon(tmp_path, cfg)
    assert cli("pause", "--config", str(cfg)).returncode == 0
    _files(watch)
    _waiting(cfg)
    assert daemon.stop() == 0
    umount(watch)
    assert cli("resume", "--config", str(cfg)).returncode == 0
    daemon = start_daemon(tmp_path, cfg, name="daemon2.log")
    try:
        stays(lambda: none_skipped(cfg), 2.0, "a file was skipped while its folder was away")
        wait_for(lambda: NOT_THERE in attention(cfg), 20, interval=0.5,
                 what="ATTENTION: folder not there")
        assert box.state()["uploads"] == []
        mount(storage, watch)
        _uploaded_once(box, cfg)
    finally:
        daemon.stop()
