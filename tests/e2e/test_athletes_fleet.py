"""Issue 22 in a fleet: two daemons on one PostgreSQL, each with a node-local folder "Tom" whose
file waits for an athlete. `athletes add` run against station-1's config links it; both
stations hear of it by NOTIFY (no poke, no rescan: it is set to an hour) and upload their file
with Tom's UUID within seconds."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from support import Sandbox, cli, make_movie, start_daemon, wait_for, write_config

TOM = "0b6f0c52-1d0e-4c3a-9a5e-2f1f4b7d9e01"


def test_a_link_made_on_one_station_is_used_by_another(tmp_path: Path, pg_db: str,
                                                       sandbox: Sandbox) -> None:
    configs, procs = [], []
    try:
        for i in (1, 2):
            local = tmp_path / f"local{i}"
            (local / "Tom").mkdir(parents=True)
            cfg = write_config(
                tmp_path / f"station-{i}.toml", watch=local, db=tmp_path / "unused.db",
                base_url=sandbox.base_url, settle=0.3,
                extra=f'[node]\nname = "station-{i}"\nlease_seconds = 3.0\n'
                      f'[watching]\nrescan_seconds = 3600.0\n')
            text = cfg.read_text().replace(f'url = "sqlite:///{tmp_path / "unused.db"}"',
                                           f"url = {json.dumps(pg_db)}")
            cfg.write_text(text)
            configs.append(cfg)
            procs.append(start_daemon(tmp_path, cfg, name=f"station-{i}.log"))
            shutil.copy(make_movie(tmp_path / f"src{i}.mov", frames=2 + i),
                        local / "Tom" / f"tom{i}.mov")

        def waiting() -> int:
            out = cli("status", "--json", "--config", str(configs[1]))
            folders = json.loads(out.stdout)["unknown_folders"]
            return sum(f["files"] for f in folders if f["folder"] == "Tom")

        wait_for(lambda: waiting() == 2, 20, what="both stations' files to wait")
        out = cli("athletes", "add", "Tom", TOM, "--config", str(configs[0]))
        assert out.returncode == 0, out.stderr
        wait_for(lambda: sandbox.reservations_for("tom1.mov")
                 and sandbox.reservations_for("tom2.mov"), 10,
                 what="both stations to upload Tom's files")
        assert [r["athlete_id"] for r in sandbox.reservations_for("tom2.mov")] == [TOM]
        assert [r["athlete_id"] for r in sandbox.reservations_for("tom1.mov")] == [TOM]
        listed = cli("athletes", "list", "--json", "--config", str(configs[1]))
        assert [a["folder"] for a in json.loads(listed.stdout)["athletes"]
                if a["source"] == "table"] == ["Tom"]
    finally:
        for p in procs:
            p.stop()
