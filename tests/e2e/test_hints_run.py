"""Hints work as printed (issue 34): in `make run`'s setting (its own config, written by the
Makefile's recipe; the daemon with --sandbox), every command `status` suggests for a failed file
and a folder no athlete is linked to runs as printed, from another folder, with no
$UPLIFT_CAPTURE_CONFIG (a bare `uplift-capture retry 3` read /etc/… and failed: "config file not
found"); and `check --sandbox` passes on that config, which has no API token."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from support import Proc, make_movie, wait_for

ROOT = Path(__file__).resolve().parents[2]
TOM = "0b6f0c52-1d0e-4c3a-9a5e-2f1f4b7d9e01"
# A suggested command runs to the end of its line, or to "  ", " (", ")" or "`" after it.
HINT = re.compile(r"uplift-capture [^\n`]*?(?=  | \(|\)|`|$)", re.MULTILINE)
ENV = {k: v for k, v in os.environ.items()
       if k not in ("UPLIFT_CAPTURE_CONFIG", "UPLIFT_API_TOKEN")}


def run_as_printed(line: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`uplift-capture …` as a person pastes it, placeholders filled in."""
    line = line.replace("[--name NAME]", "--name 'Tom Brady'").replace("ATHLETE_UUID", TOM)
    args = shlex.split(line.replace("FOLDER", "Tom"))
    assert args[0] == "uplift-capture"
    return subprocess.run([sys.executable, "-m", "daemon", *args[1:]], cwd=cwd, env=ENV,
                          capture_output=True, text=True, timeout=60)


def make_run_config(tmp_path: Path) -> Path:
    """`make run`'s config, by the Makefile's own recipe, in tmp_path/.uplift-dev; the console
    off (its default port may be taken by another test)."""
    dev = tmp_path / ".uplift-dev"
    subprocess.run(["make", "-s", "-C", str(ROOT), f"DEV={dev}", f"{dev}/config.toml"],
                   check=True, capture_output=True, timeout=60)
    config = dev / "config.toml"
    config.write_text(config.read_text() + '[web]\nlisten = ""\n')
    (tmp_path / "captures" / "demo").mkdir(parents=True)
    return config


def test_every_hint_status_prints_runs_as_printed(tmp_path: Path) -> None:
    config = make_run_config(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    captures = tmp_path / "captures"
    daemon = Proc(["run", "--sandbox", "--config", str(config)], tmp_path / "daemon.log")
    daemon.start()
    try:
        wait_for(lambda: daemon.has_event("daemon.ready"), 30, what="daemon.ready")
        (captures / "Tom").mkdir()
        shutil.copy(make_movie(tmp_path / "t.mov", frames=2), captures / "Tom" / "t.mov")
        whole = make_movie(tmp_path / "cut.mov", frames=4).read_bytes()
        (captures / "demo" / "cut.mov").write_bytes(whole[: len(whole) // 2])  # cut off

        def both() -> str | None:
            out = subprocess.run([sys.executable, "-m", "daemon", "status", "--config",
                                  str(config)], cwd=elsewhere, env=ENV, capture_output=True,
                                 text=True, timeout=60)
            assert out.returncode == 0, out.stderr
            seen = "Failed" in out.stdout and "Folders waiting for an athlete" in out.stdout
            return out.stdout if seen else None
        shown = wait_for(both, 30, what="a failed and a waiting file")
        hints = HINT.findall(shown)
        verbs = {shlex.split(h)[1] for h in hints}
        assert {"retry", "athletes"} <= verbs, shown
        for hint in hints:
            assert f"--config {config}" in hint, hint
            done = run_as_printed(hint, elsewhere)
            assert done.returncode == 0, f"{hint}\n{done.stdout}{done.stderr}"
    finally:
        daemon.stop()


def test_check_sandbox_passes_on_make_runs_config(tmp_path: Path) -> None:
    config = make_run_config(tmp_path)
    plain = subprocess.run([sys.executable, "-m", "daemon", "check", "--config", str(config)],
                           env=ENV, capture_output=True, text=True, timeout=60)
    assert plain.returncode == 1 and "no API token" in plain.stdout  # a real API needs one
    out = subprocess.run([sys.executable, "-m", "daemon", "check", "--sandbox", "--config",
                          str(config)], env=ENV, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "sandbox API started" in out.stdout and "FAIL" not in out.stdout
    assert re.search(r"ok  .*token", out.stdout), out.stdout  # the token step did run
