"""A reader that stops early (`uplift-capture athletes list | head -1`) is no error: every
command ends quietly, exit 0 and nothing on stderr (issue 30 item 6). The pipe's reading end is
closed before the command writes a byte, so every write it makes meets a closed pipe; with
PYTHONUNBUFFERED the first print fails, else the flush at the end does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from support import write_config

from daemon.jobs.store import Store

COMMANDS = [
    ["status"], ["status", "--json"], ["status", "--all"], ["status", "--all", "--json"],
    ["athletes", "list"], ["athletes", "list", "--json"], ["athletes", "export"],
    ["check", "--offline"], ["retry", "--failed"], ["pause", "--for", "1h"], ["resume"],
    ["db", "upgrade"],
]


def run_into_closed_pipe(args: list[str], unbuffered: bool) -> tuple[int, str]:
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first byte
    env = {**os.environ, "PYTHONUNBUFFERED": "1" if unbuffered else ""}
    try:
        done = subprocess.run([sys.executable, "-m", "daemon", *args], stdout=write_end,
                              stderr=subprocess.PIPE, text=True, timeout=60, env=env)
    finally:
        os.close(write_end)
    return done.returncode, done.stderr


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("pipes")
    (tmp / "w").mkdir()
    Store.open(f"sqlite:///{tmp / 'jobs.db'}").close()  # made and up to date
    return write_config(tmp / "config.toml", watch=tmp / "w", db=tmp / "jobs.db")


@pytest.mark.parametrize("unbuffered", [False, True], ids=["buffered", "unbuffered"])
@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_a_closed_pipe_ends_every_command_quietly(config: Path, args: list[str],
                                                  unbuffered: bool) -> None:
    code, err = run_into_closed_pipe([*args, "--config", str(config)], unbuffered)
    assert (code, err) == (0, ""), args


@pytest.mark.parametrize("unbuffered", [False, True], ids=["buffered", "unbuffered"])
def test_a_closed_pipe_ends_help_quietly(unbuffered: bool) -> None:
    assert run_into_closed_pipe(["--help"], unbuffered) == (0, "")
