"""Names that would drive a terminal (issue 30 item 5): a file or folder name holding ESC or
BEL sequences or newlines, in a real watch folder under the daemon as a subprocess. `status` and
`status --all` print them escaped (no control character reaches the terminal, no fake entry is
printed); `status --json` keeps them exact."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import qt_atoms as qt
from support import (
    ATHLETE,
    Sandbox,
    cli,
    jobs_by_name,
    make_movie,
    start_daemon,
    wait_for,
    write_config,
)

# A C0/C1 control character or DEL other than the newlines that end printed lines.
RAW = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]")
TITLE = "\x1b]0;owned\x07"  # sets the window title
FAKE = "evil\n  #999 fake.mov\n      Failed"  # a fake failed entry
DAMAGED = f"{TITLE}{FAKE}.mov"
GOOD = "\x1b[31mred\x1b[0m\tclip.mov"
FOLDER = "\x1b[2Jcoach\x07"  # clears the screen; no athlete is linked to it


def test_control_characters_in_names_are_escaped_in_text_and_exact_in_json(
        tmp_path: Path, sandbox: Sandbox) -> None:
    captures = tmp_path / "captures"
    (captures / ATHLETE).mkdir(parents=True)
    (captures / FOLDER).mkdir()
    movie = make_movie(tmp_path / "src" / "m.mov", 2)
    (captures / ATHLETE / DAMAGED).write_bytes(qt.movie(qt.atom(b"mvhd"), qt.video_trak()))
    shutil.copy(movie, captures / ATHLETE / GOOD)
    shutil.copy(movie, captures / FOLDER / "take.mov")
    config = write_config(tmp_path / "config.toml", watch=captures, db=tmp_path / "jobs.db",
                          base_url=sandbox.base_url)
    daemon = start_daemon(tmp_path, config)
    try:
        wait_for(lambda: {j.get("state") for j in jobs_by_name(config).values()} ==
                 {"failed", "done", "pending"} and len(jobs_by_name(config)) == 3, 30,
                 what="one failed, one uploaded, one waiting for an athlete")
    finally:
        assert daemon.stop() == 0

    doc = json.loads(cli("status", "--json", "--config", str(config)).stdout)
    assert {Path(j["path"]).name for j in doc["jobs"]} == {DAMAGED, GOOD, "take.mov"}
    assert [f["folder"] for f in doc["unknown_folders"]] == [FOLDER]
    for extra in ([], ["--all"]):
        out = cli("status", *extra, "--config", str(config))
        assert out.returncode == 0, out.stderr
        text = out.stdout
        assert not RAW.search(text), (extra, RAW.search(text))
        assert "\\e]0;owned\\x07evil\\n  #999 fake.mov\\n      Failed.mov" in text, text
        assert "\\e[31mred\\e[0m\\tclip.mov" in text
        assert "  \\e[2Jcoach\\x07: 1 file(s)" in text
        assert "  #999 fake.mov" not in text.splitlines()  # no fake entry
        assert text.count("Failed (needs a person):") == 1


def test_athletes_roots_and_check_print_names_escaped(tmp_path: Path) -> None:
    """The other commands that print a folder or a path a person did not type."""
    (tmp_path / f"captures{TITLE}\n").mkdir()
    # TOML escapes (written as they are into the config): the folder's real name is above.
    config = write_config(tmp_path / "config.toml",
                          watch=tmp_path / "captures\\u001b]0;owned\\u0007\\n",
                          db=tmp_path / "jobs.db", athletes={"jane\\u001b[2J\\u0007": ATHLETE})
    shown = {
        "athletes": cli("athletes", "list", "--config", str(config)),
        "check": cli("check", "--offline", "--config", str(config)),
        "roots": cli("roots", "accept", str(tmp_path / "elsewhere\x1b[31m"), "--config",
                     str(config)),
    }
    for command, out in shown.items():
        assert not RAW.search(out.stdout + out.stderr), (command, out.stdout, out.stderr)
    assert "jane\\e[2J\\x07  " + ATHLETE in shown["athletes"].stdout
    assert "captures\\e]0;owned\\x07\\n is readable" in shown["check"].stdout
    assert "elsewhere\\e[31m is not a watch folder" in shown["roots"].stdout
    listed = json.loads(cli("athletes", "list", "--json", "--config", str(config)).stdout)
    assert [x["folder"] for x in listed["athletes"]] == ["jane\x1b[2J\x07"]
