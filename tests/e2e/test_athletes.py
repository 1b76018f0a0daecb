"""Athletes without editing the config (issue 22), through the daemon and the sandbox as real
processes: a folder whose files wait for an athlete is linked by `athletes add`, and its files
(and its session folder's) upload with that athlete; refusals in one line; a CSV import checked
whole; links survive a restart; `status` shows the folders that wait and how to link them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from support import (
    ATHLETE,
    Sandbox,
    cli,
    make_movie,
    start_daemon,
    status,
    wait_for,
    write_config,
)

TOM = "0b6f0c52-1d0e-4c3a-9a5e-2f1f4b7d9e01"
ANA = "7c2e9a10-55aa-4f0e-8d3b-6a1c0e9b2f44"
RENE = "3d9b1e27-0c44-4b6e-9f11-5e2a7c8d0a93"


def athletes(config: Path, *args: str) -> tuple[int, str, str]:
    out = cli("athletes", *args, "--config", str(config))
    return out.returncode, out.stdout, out.stderr


def waiting(config: Path, folder: str) -> int:
    return next((f["files"] for f in status(config)["unknown_folders"]
                 if f["folder"] == folder), 0)


def uploaded_for(box: Sandbox, name: str) -> list[str]:
    return [r["athlete_id"] for r in box.reservations_for(name)]


def test_link_by_command_uploads_waiting_files_and_survives_a_restart(
        tmp_path: Path, sandbox: Sandbox) -> None:
    captures = tmp_path / "captures"
    (captures / "Tom" / "monday").mkdir(parents=True)
    (captures / "jane").mkdir()
    config = write_config(tmp_path / "config.toml", watch=captures, db=tmp_path / "jobs.db",
                          base_url=sandbox.base_url, settle=0.3)
    made = iter(range(2, 12))

    def movie() -> Path:  # a different video each time (copies of one are duplicates)
        n = next(made)
        return make_movie(tmp_path / f"src{n}.mov", frames=n)

    daemon = start_daemon(tmp_path, config)
    try:
        shutil.copy(movie(), captures / "Tom" / "a.mov")
        shutil.copy(movie(), captures / "Tom" / "monday" / "b.mov")
        wait_for(lambda: waiting(config, "Tom") == 2, 20, what="Tom's two files to wait")
        doc = status(config)
        (tom,) = [f for f in doc["unknown_folders"] if f["folder"] == "Tom"]
        assert tom["oldest"] > 0
        text = cli("status", "--config", str(config)).stdout
        assert "Folders waiting for an athlete:" in text and "Tom: 2 file(s)" in text
        assert "uplift-capture athletes add FOLDER ATHLETE_UUID" in text

        # Refusals: one plain line, nothing written.
        code, _, err = athletes(config, "add", "Tom", "not-a-uuid")
        assert code == 2 and err.count("\n") == 1 and "is not an athlete UUID" in err
        code, _, err = athletes(config, "add", "jane", TOM)
        assert code == 2 and err.count("\n") == 1
        assert f"the config file {config}" in err
        code, _, err = athletes(config, "remove", "jane")
        assert code == 2 and str(config) in err
        assert uploaded_for(sandbox, "a.mov") == []

        code, out, err = athletes(config, "add", "Tom", TOM.upper(), "--name", "Tom Brady")
        assert code == 0, err
        assert "its 2 waiting file(s) go now" in out
        wait_for(lambda: uploaded_for(sandbox, "a.mov") and uploaded_for(sandbox, "b.mov"),
                 15, what="Tom's files to upload")
        assert uploaded_for(sandbox, "a.mov") == [TOM]
        assert uploaded_for(sandbox, "b.mov") == [TOM]

        listed = json.loads(athletes(config, "list", "--json")[1])["athletes"]
        by_folder = {a["folder"]: a for a in listed}
        assert by_folder["jane"]["source"] == "config" and by_folder["jane"]["athlete_id"] \
            == ATHLETE
        assert by_folder["Tom"]["source"] == "table" and by_folder["Tom"]["name"] == "Tom Brady"
        assert by_folder["Tom"]["athlete_id"] == TOM
        doc = status(config)
        assert {a["folder"]: a["source"] for a in doc["athletes"]} == \
            {"jane": "config", "Tom": "table"}
        assert doc["unknown_folders"] == []

        # A CSV with one bad line is refused whole, naming the line; then a good one.
        (captures / "Ana").mkdir()
        (captures / "René").mkdir()  # typed NFC in the CSV, NFD on disk: still matches
        shutil.copy(movie(), captures / "Ana" / "c.mov")
        nfd = captures / "Rene\u0301"
        (captures / "René").rename(nfd)
        shutil.copy(movie(), nfd / "d.mov")
        wait_for(lambda: waiting(config, "Ana") == 1 and waiting(config, "René") == 1, 20,
                 what="Ana's and René's files to wait")
        bad = tmp_path / "bad.csv"
        bad.write_text(f"folder,athlete_id,name\nAna,{ANA},Ana Ivanovic\nRené,12345,\n")
        code, _, err = athletes(config, "import", str(bad))
        assert code == 2 and "line 3" in err and err.count("\n") == 1
        config_row = tmp_path / "config_row.csv"
        config_row.write_text(f"folder,athlete_id,name\nAna,{ANA},\njane,{ANA},\n")
        code, _, err = athletes(config, "import", str(config_row))
        assert code == 2 and "line 3" in err and str(config) in err
        assert "Ana" not in athletes(config, "export")[1]
        good = tmp_path / "good.csv"
        good.write_text(f"folder,athlete_id,name\nAna,{ANA},Ana Ivanovic\nRené,{RENE},\n")
        code, out, err = athletes(config, "import", str(good))
        assert code == 0 and "imported 2" in out, err
        wait_for(lambda: uploaded_for(sandbox, "c.mov") and uploaded_for(sandbox, "d.mov"),
                 15, what="the imported folders' files to upload")
        assert uploaded_for(sandbox, "c.mov") == [ANA]
        assert uploaded_for(sandbox, "d.mov") == [RENE]
        exported = athletes(config, "export")[1].splitlines()
        assert exported[0] == "folder,athlete_id,name"
        assert f"Ana,{ANA},Ana Ivanovic" in exported and f"Tom,{TOM},Tom Brady" in exported
    finally:
        assert daemon.stop() == 0

    # Links survive a restart: a new file in Tom's folder goes with Tom's UUID.
    daemon = start_daemon(tmp_path, config, name="daemon2.log")
    try:
        shutil.copy(movie(), captures / "Tom" / "e.mov")
        wait_for(lambda: uploaded_for(sandbox, "e.mov"), 20, what="e.mov to upload")
        assert uploaded_for(sandbox, "e.mov") == [TOM]
        # Unlinking never touches what was uploaded; a new file waits again.
        code, out, err = athletes(config, "remove", "Tom")
        assert code == 0, err
        shutil.copy(movie(), captures / "Tom" / "f.mov")
        wait_for(lambda: waiting(config, "Tom") == 1, 20, what="f.mov to wait")
        assert all(j["state"] == "done" for j in status(config)["jobs"]
                   if Path(j["path"]).name in ("a.mov", "b.mov", "e.mov"))
        code, _, err = athletes(config, "remove", "Tom")
        assert code == 1 and "not linked" in err
    finally:
        assert daemon.stop() == 0
