"""Issue 9, defects 4, 7 and 10 as an operator meets them: one daemon per job table (the others
keep working beside it), config values the API's JSON cannot carry stop `check` and `run` with
the key named, and `check` exits non-zero whenever it printed a FAIL line."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from support import (
    TOKEN,
    Proc,
    Sandbox,
    cli,
    job_state,
    logged,
    make_movie,
    start_daemon,
    status,
    wait_for,
    write_config,
)


def setup(tmp_path: Path, base_url: str = "http://127.0.0.1:9/v1", extra: str = "",
          upload: str = "") -> tuple[Path, Path]:
    folder = tmp_path / "captures" / "jane"
    folder.mkdir(parents=True)
    config = write_config(tmp_path / "config.toml", watch=tmp_path / "captures",
                          db=tmp_path / "jobs.db", base_url=base_url, settle=0.3, extra=extra,
                          upload=upload)
    return folder, config


def run_briefly(tmp_path: Path, config: Path, name: str, within: float = 15) -> tuple[int, str]:
    """`uplift-capture run` that is expected to stop by itself: its exit code and output."""
    proc = Proc(["run", "--config", str(config)], tmp_path / name,
                env={"UPLIFT_API_TOKEN": TOKEN}).start()
    assert proc.popen is not None
    try:
        code = proc.popen.wait(within)
    except subprocess.TimeoutExpired:
        proc.stop()
        raise AssertionError(f"`run` still running after {within}s:\n"
                             f"{proc.log_path.read_text()}") from None
    return code, proc.log_path.read_text()


def test_second_daemon_refuses_to_start_and_names_the_first(tmp_path: Path,
                                                            sandbox: Sandbox) -> None:
    folder, config = setup(tmp_path, sandbox.base_url)
    sandbox.faults(upload_rate=100_000)  # ~4.5 s: the first daemon is mid-upload throughout
    first = start_daemon(tmp_path, config)
    assert first.popen is not None
    try:
        shutil.copy(make_movie(tmp_path / "src.mov", frames=4), folder / "busy.mov")
        wait_for(lambda: logged(first, "upload.started", "busy.mov"), 20, what="uploading")
        code, text = run_briefly(tmp_path, config, "second.log")
        assert code != 0, text
        naming = [line for line in text.splitlines() if str(first.popen.pid) in line]
        assert len(naming) == 1, f"want one line naming PID {first.popen.pid}:\n{text}"
        assert "Traceback" not in text, text
        # The tools beside the daemon keep working.
        assert status(config)["counts"]["uploading"] == 1
        retry = cli("retry", "--failed", "--config", str(config))
        assert retry.returncode == 0 and "nothing to retry" in retry.stdout, retry
        check = cli("check", "--offline", "--config", str(config))
        assert check.returncode == 0 and "FAIL" not in check.stdout, check.stdout + check.stderr
        sandbox.faults(upload_rate=None)
        wait_for(lambda: job_state(config, "busy.mov") == "done", 30, what="busy done")
        # The refused second daemon recovered nothing: one capture, one upload.
        assert len(sandbox.reservations_for("busy.mov")) == 1
        assert len(sandbox.uploads_for("busy.mov")) == 1
        first.kill()  # SIGKILL: the kernel releases the lock with the process
        after = start_daemon(tmp_path, config, name="after.log")
        try:
            shutil.copy(make_movie(tmp_path / "src2.mov", frames=1), folder / "after.mov")
            wait_for(lambda: job_state(config, "after.mov") == "done", 30, what="after done")
        finally:
            assert after.stop() == 0
    finally:
        first.kill()


def refusal(out: subprocess.CompletedProcess[str] | str, db: Path) -> str:
    """The one line that refuses `db` for having a second name."""
    text = out if isinstance(out, str) else out.stdout + out.stderr
    assert "Traceback" not in text, text
    lines = [line for line in text.splitlines() if str(db) in line and "hard link" in line]
    assert len(lines) == 1, f"want one line naming {db} and its hard link:\n{text}"
    return lines[0]


def test_a_hard_linked_job_table_is_refused_by_daemons_and_commands(tmp_path: Path,
                                                                   sandbox: Sandbox) -> None:
    """Issue 28 item 8: `ln jobs.db other.db` gave a second name, with its own lock and WAL
    files: a second daemon ran beside the first on the one table, and a command through the
    other name could corrupt it. A file with more than one name is refused, in one line."""
    folder, config = setup(tmp_path, sandbox.base_url)
    db, other = tmp_path / "jobs.db", tmp_path / "other.db"
    (tmp_path / "elsewhere").mkdir()
    other_config = write_config(tmp_path / "other.toml", watch=tmp_path / "elsewhere", db=other,
                                base_url=sandbox.base_url, settle=0.3)
    first = start_daemon(tmp_path, config)
    try:
        shutil.copy(make_movie(tmp_path / "src.mov", frames=1), folder / "one.mov")
        wait_for(lambda: job_state(config, "one.mov") == "done", 30, what="one.mov done")
        os.link(db, other)
        code, text = run_briefly(tmp_path, other_config, "second.log")
        assert code != 0
        assert "names" in refusal(text, other)
        code, text = run_briefly(tmp_path, config, "third.log")  # its own name: the same
        assert code != 0
        refusal(text, db)
        for cfg, name in ((other_config, other), (config, db)):
            for command in (("status",), ("retry", "--failed")):
                out = cli(*command, "--config", str(cfg))
                assert out.returncode != 0, (command, out.stdout)
                refusal(out, name)
        other.unlink()  # one name again: everything works
        assert status(config)["counts"]["done"] == 1
        shutil.copy(make_movie(tmp_path / "src2.mov", frames=1), folder / "two.mov")
        wait_for(lambda: job_state(config, "two.mov") == "done", 30, what="two.mov done")
        assert len(sandbox.uploads_for("one.mov")) == 1
    finally:
        assert first.stop() == 0


MOVEMENT_LINE = 'movement = "full_swing"'


@pytest.mark.parametrize("add, key", [
    (f"{MOVEMENT_LINE}\nday = 2024-01-01", "day"),
    (f"{MOVEMENT_LINE}\nat = 2024-01-01T10:00:00Z", "at"),
    (f"{MOVEMENT_LINE}\nclub = {{ kind = \"driver\" }}", "club"),
], ids=["date", "datetime", "table"])
def test_config_values_json_cannot_carry_stop_check_and_run(tmp_path: Path, add: str,
                                                            key: str) -> None:
    _, config = setup(tmp_path)
    text = config.read_text()
    assert text.count(MOVEMENT_LINE) == 1
    config.write_text(text.replace(MOVEMENT_LINE, add))  # inside [capture.movement]
    check = cli("check", "--offline", "--config", str(config))
    refused_naming_the_key("check", check.returncode, check.stdout + check.stderr, key, config)
    # Only after `check` held: a `run` that accepts the config takes its full 15 s to fail.
    refused_naming_the_key("run", *run_briefly(tmp_path, config, "run.log"), key, config)


def refused_naming_the_key(command: str, code: int, out: str, key: str, config: Path) -> None:
    assert code != 0, f"`{command}` accepted movement.{key}:\n{out}"
    lines = [line for line in out.splitlines() if f"movement.{key}" in line]
    assert len(lines) == 1 and str(config) in lines[0], \
        f"`{command}`: want one line naming movement.{key} and {config}:\n{out}"
    assert "Traceback" not in out, out


def test_config_sub_table_under_capture_camera_is_refused(tmp_path: Path) -> None:
    _, config = setup(tmp_path, extra="[capture.camera.rig]\nmodel = \"tripod\"")
    check = cli("check", "--offline", "--config", str(config))
    out = check.stdout + check.stderr
    assert check.returncode != 0, out
    assert any("camera.rig" in line and str(config) in line for line in out.splitlines()), out


def test_check_move_without_archive_dir_exits_non_zero(tmp_path: Path) -> None:
    _, config = setup(tmp_path, upload='after_upload = "move"')
    check = cli("check", "--offline", "--config", str(config))
    assert check.returncode != 0, check.stdout
    assert "archive_dir" in check.stdout + check.stderr


def test_check_move_with_an_unusable_archive_dir_exits_non_zero(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the archive's parent should be")
    _, config = setup(tmp_path, upload=f'after_upload = "move"\n'
                                       f'archive_dir = "{blocker / "archive"}"')
    check = cli("check", "--offline", "--config", str(config))
    assert any(line.startswith("FAIL") and "archive" in line
               for line in check.stdout.splitlines()), check.stdout + check.stderr
    assert check.returncode != 0, check.stdout

# The FAIL-before-an-ok-line case needs a folder root cannot write: tests/unit/test_check.py.
