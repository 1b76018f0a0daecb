"""Config errors through the real command: a plain one-line reason, non-zero, no traceback."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from support import cli, write_config


@pytest.mark.parametrize(("upload", "athletes", "words"), [
    ("concurency = 2", {}, "[upload] concurency: unknown key"),
    ("", {"bob": "nope"}, '[athletes] "bob": \'nope\' is not a UUID'),
])
def test_run_with_a_bad_config_exits_non_zero_without_traceback(
        tmp_path: Path, upload: str, athletes: dict[str, str], words: str) -> None:
    (tmp_path / "w").mkdir()
    config = write_config(tmp_path / "c.toml", watch=tmp_path / "w", db=tmp_path / "j.db",
                          athletes=athletes, upload=upload)
    out = cli("run", "--config", str(config))
    assert out.returncode == 2
    assert "Traceback" not in out.stderr + out.stdout
    assert str(config) in out.stderr and words in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_missing_config_file_is_named(tmp_path: Path) -> None:
    out = cli("status", "--config", str(tmp_path / "missing.toml"))
    assert out.returncode == 2 and "missing.toml" in out.stderr and "not found" in out.stderr
    assert "Traceback" not in out.stderr


def test_unopenable_database_is_one_plain_line(tmp_path: Path) -> None:
    (tmp_path / "w").mkdir()
    config = write_config(tmp_path / "c.toml", watch=tmp_path / "w", db=Path("/proc/no/jobs.db"))
    out = cli("run", "--config", str(config), env={"UPLIFT_API_TOKEN": "t" * 10})
    assert out.returncode == 1
    assert "cannot open the job database" in out.stderr and "[database] url" in out.stderr
    assert "Traceback" not in out.stderr + out.stdout


# ---- issue 30 item 7: absurd numbers ---------------------------------------------------------

@pytest.mark.parametrize(("args", "words"), [
    (["retry", "9223372036854775808"], "9223372036854775808"),
    (["retry", "3", "99999999999999999999999"], "99999999999999999999999"),
    (["retry", "0"], "job id"),
    (["pause", "--for", "99999999h"], "366 days"),
    (["pause", "--for", "8785h"], "366 days"),
    (["pause", "--for", "9" * 5000 + "s"], "366 days"),
])
def test_absurd_numbers_are_one_line_and_exit_2(tmp_path: Path, args: list[str],
                                                words: str) -> None:
    (tmp_path / "w").mkdir()
    config = write_config(tmp_path / "c.toml", watch=tmp_path / "w", db=tmp_path / "j.db")
    out = cli(*args, "--config", str(config))
    assert out.returncode == 2, out.stderr
    assert len(out.stderr.splitlines()) == 1 and words in out.stderr, out.stderr
    assert "Traceback" not in out.stderr + out.stdout
    assert cli("status", "--json", "--config", str(config)).stdout.count('"paused"') == 0


def test_a_pause_that_ends_another_day_names_the_day(tmp_path: Path) -> None:
    (tmp_path / "w").mkdir()
    config = write_config(tmp_path / "c.toml", watch=tmp_path / "w", db=tmp_path / "j.db")
    out = cli("pause", "--for", "25h", "--config", str(config))
    assert out.returncode == 0, out.stderr
    assert re.search(r"until \d{4}-\d\d-\d\d \d\d:\d\d:\d\d;", out.stdout), out.stdout
