"""Issue 28, item 1: a queued file renamed, then renamed back, is still uploaded once from its
first name: the job at the first name was skipped as moved, which says nothing about the file
there (jobs/left.py), so seen there again it is work; live, and after a restart. Uploads are
held with `pause` so both renames happen while the file waits `queued`."""

from __future__ import annotations

import shutil
from pathlib import Path

from support import (
    Proc,
    Sandbox,
    captures_config,
    cli,
    logged,
    make_movie,
    sha256,
    start_daemon,
    wait_for,
    wait_settled,
)


def _queued_then_renamed(tmp_path: Path, config: Path, daemon: Proc, clip: Path,
                         swing: Path) -> None:
    """`clip` queued while uploads are paused, then renamed to `swing`; returns once the daemon
    has moved the job over (clip's job skipped as moved, swing's queued)."""
    assert cli("pause", "--config", str(config)).returncode == 0
    shutil.copy(make_movie(tmp_path / "src.mov", frames=3), clip)
    wait_for(lambda: logged(daemon, "job.queued", clip.name), 20, what=f"{clip.name} queued")
    clip.rename(swing)
    wait_for(lambda: logged(daemon, "job.moved", swing.name), 20,
             what=f"the job moved over to {swing.name}")


def _uploaded_once_from(box: Sandbox, config: Path, daemon: Proc, clip: Path, swing: Path,
                        original: str) -> None:
    """Once the daemon has taken the job back to `clip` (swing's still queued, as paused),
    uploads resume: `clip` goes once, with the bytes it had all along."""
    wait_for(lambda: logged(daemon, "job.moved", clip.name), 20,
             what=f"the job to move back to {clip.name}")
    assert cli("resume", "--config", str(config)).returncode == 0
    jobs = wait_settled(config, 45, what="jobs to settle after renaming back")
    here = [j for j in jobs if Path(j["path"]).name == clip.name]
    uploads = box.uploads_for(clip.name)
    assert len(uploads) == 1, f"{clip.name} uploaded {len(uploads)} times; jobs: {jobs}"
    assert uploads[0]["sha256"] == original == sha256(clip)
    assert [j["state"] for j in here] == ["done"], f"jobs at {clip.name}: {jobs}"
    assert not box.uploads_for(swing.name), "uploaded under the name it no longer has"
    assert not [j for j in jobs if j["state"] == "failed"], jobs


def _station(tmp_path: Path, box: Sandbox) -> tuple[Path, Path, Path]:
    """(config, clip, swing): jane's clip.mov, to be renamed swing1.mov."""
    captures, config = captures_config(tmp_path, box.base_url, settle=0.3)
    return config, captures / "jane" / "clip.mov", captures / "jane" / "swing1.mov"


def test_renamed_and_renamed_back_while_queued_is_uploaded_once(tmp_path: Path,
                                                                sandbox: Sandbox) -> None:
    config, clip, swing = _station(tmp_path, sandbox)
    daemon = start_daemon(tmp_path, config)
    try:
        _queued_then_renamed(tmp_path, config, daemon, clip, swing)
        original = sha256(swing)
        swing.rename(clip)
        _uploaded_once_from(sandbox, config, daemon, clip, swing, original)
    finally:
        daemon.stop()


def test_renamed_back_while_the_daemon_was_stopped_is_uploaded_once(tmp_path: Path,
                                                                     sandbox: Sandbox) -> None:
    """The restart's rescan loads the known versions: a version skipped as moved is not one."""
    config, clip, swing = _station(tmp_path, sandbox)
    daemon = start_daemon(tmp_path, config)
    try:
        _queued_then_renamed(tmp_path, config, daemon, clip, swing)
    finally:
        stopped = daemon.stop()
    assert stopped == 0
    original = sha256(swing)
    swing.rename(clip)
    daemon = start_daemon(tmp_path, config, name="daemon2.log")
    try:
        _uploaded_once_from(sandbox, config, daemon, clip, swing, original)
    finally:
        daemon.stop()
