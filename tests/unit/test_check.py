"""`check` on its own: any FAIL line makes the exit status non-zero, whichever line comes last."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from support import write_config

from daemon import config as config_mod
from daemon.commands import check


def test_a_fail_line_before_good_ones_still_fails(tmp_path: Path, monkeypatch, capsys) -> None:
    watch, archive = tmp_path / "w", tmp_path / "archive"
    watch.mkdir()
    archive.mkdir()
    cfg = config_mod.load(str(write_config(
        tmp_path / "c.toml", watch=watch, db=tmp_path / "jobs.db",
        upload=f'after_upload = "move"\narchive_dir = "{archive}"')))
    real = os.access

    def access(path: os.PathLike | str, mode: int) -> bool:
        # As root every folder is writable: pretend the watch folder is not (the FAIL line),
        # while the archive folder after it stays writable (an "ok" line follows).
        if Path(path) == watch and mode & os.W_OK:
            return False
        return real(path, mode)

    monkeypatch.setattr(check.os, "access", access)
    code = check.run(cfg, offline=True)
    out = capsys.readouterr().out
    assert "FAIL watch folder" in out and "ok   archive folder" in out
    assert code == 1


@pytest.mark.parametrize("value", ["2024-01-01", "{ a = 1 }"])
def test_values_json_cannot_carry_name_the_key(tmp_path: Path, value: str) -> None:
    (tmp_path / "w").mkdir()
    path = write_config(tmp_path / "c.toml", watch=tmp_path / "w", db=tmp_path / "j.db")
    text = path.read_text().replace('movement = "full_swing"',
                                    f'movement = "full_swing"\nday = {value}')
    path.write_text(text)
    with pytest.raises(config_mod.ConfigError, match=r"movement\.day.*string, number"):
        config_mod.load(str(path))


@pytest.mark.parametrize("db", ["jobs.db", "sub/jobs.db"])
def test_a_database_the_daemon_cannot_create_fails(tmp_path: Path, db: str) -> None:
    """Issue 30: `check` passed a job table that does not exist yet ("the daemon creates it")
    in a folder this user cannot write, or whose missing folder it cannot make; `run` then
    failed. (The folder made immutable: read-only even for root.)"""
    from support import cli as run_cli
    from support import immutable

    (tmp_path / "w").mkdir()
    state = tmp_path / "state"
    state.mkdir()
    config = write_config(tmp_path / "c.toml", watch=tmp_path / "w", db=state / db)
    with immutable(state):
        done = run_cli("check", "--offline", "--config", str(config))
        run = run_cli("run", "--config", str(config), env={"UPLIFT_API_TOKEN": "t"})
    assert run.returncode != 0  # what check must foresee
    assert done.returncode == 1, done.stdout
    fail = [x for x in done.stdout.splitlines() if x.startswith("FAIL")]
    assert len(fail) == 1 and str(state) in fail[0], fail
    assert "creates it" not in done.stdout
    ok = run_cli("check", "--offline", "--config", str(config))
    assert ok.returncode == 0 and "the daemon creates it when it starts" in ok.stdout
