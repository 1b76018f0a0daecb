"""Upgrading a station (issue 19, item 12), with the daemon and the sandbox as real processes:
the new `status` reads a job table the previous version left without migrating it, the new
`run` then migrates it and uploads every waiting file once; on PostgreSQL a daemon keeps
working while another station's additive migration changes the table under it."""

from __future__ import annotations

import json
import re
import uuid
from collections import Counter
from pathlib import Path

from migration_rules import copy_with, record, upgrade, violations
from sqlalchemy import Engine, inspect, text
from support import (
    ATHLETE,
    Sandbox,
    captures_config,
    cli,
    jobs_by_name,
    make_movie,
    set_config_key,
    start_daemon,
    wait_for,
)

from daemon.jobs import engine as engine_mod
from daemon.jobs import schema
from daemon.jobs.engine import SCHEMA_HEAD, current_revision, make_engine
from daemon.watch.movie import fingerprint

NODE = "station-1"
PREVIOUS = "0003"  # the schema of the version before issue 19: the table a station has today
STATES = ("done", "failed", "skipped", "pending", "queued", "reserved", "uploading")
WAITING = ("pending", "queued", "reserved", "uploading")


def station(tmp_path: Path, url: str, box: Sandbox) -> tuple[Path, Path]:
    captures, config = captures_config(tmp_path, box.base_url, settle=0.3,
                                       extra=f'[node]\nname = "{NODE}"\nlease_seconds = 3.0\n')
    return captures, set_config_key(config, "database", "url", json.dumps(url))


def revision(url: str) -> str | None:
    eng = make_engine(url, create=False)
    try:
        return current_revision(eng)
    finally:
        eng.dispose()


def previous_table(url: str, captures: Path) -> None:
    """The job table at 0003 as a daemon of that version left it: a job in every state, each
    file in the watch folder (after_upload = keep). Plain SQL, 0003's columns only."""
    eng = make_engine(url)
    schema.upgrade(eng, PREVIOUS)
    owner = NODE if engine_mod.is_server(eng) else ""  # node-local jobs in a fleet: its own
    group = str(uuid.uuid4())
    facts = {"athlete_id": ATHLETE, "session_group_id": group,
             "capture_time": "2026-01-05T10:00:00Z",
             "camera_configuration": json.dumps({"camera_setup_selection": "single.front_on",
                                                 "camera_orientation": "landscape"}),
             "movement_attributes": json.dumps({"activity": "golf", "movement": "full_swing"})}
    with eng.begin() as conn:
        for state in STATES:
            path = make_movie(captures / "jane" / f"{state}.mov", frames=2)
            st = path.stat()
            row = {"path": str(path), "root": str(captures), "watch": str(captures),
                   "rel_path": f"jane/{state}.mov", "owner": owner, "size": st.st_size,
                   "mtime_ns": st.st_mtime_ns, "state": state, "force": False,
                   "attempts": 1, "refusals": 0, "next_attempt_at": 0.0, "bytes_sent": 0,
                   "created_at": 1.0, "updated_at": 2.0, "claim_no": 0, "node": None,
                   "fingerprint": fingerprint(path, st.st_size), "file_name": None}
            if state != "pending":
                row.update(facts, file_name=f"{state}.mov")
            if state in ("reserved", "uploading"):  # the old daemon died holding them
                row.update(node=owner or None, claim_no=1)
            if state == "uploading":
                row.update(session_id="sess-old", bytes_sent=st.st_size // 2)
            if state in ("done", "failed", "skipped"):
                row.update(finished_at=2.0, last_error=None if state == "done" else "a reason")
            conn.execute(text(f"INSERT INTO jobs ({', '.join(row)}) VALUES "
                              f"({', '.join(':' + k for k in row)})"), row)
        conn.execute(text(
            "INSERT INTO reservations (job_id, session_id, session_group_id, upload_url,"
            " expires_at, created_at, outcome) SELECT id, 'sess-old', :g, 'http://127.0.0.1:9/',"
            " 9e9, 1.0, 'active' FROM jobs WHERE state = 'uploading'"), {"g": group})
    eng.dispose()


def test_new_status_then_new_run_on_the_previous_table(tmp_path: Path, db_url: str) -> None:
    box = Sandbox(tmp_path / "sandbox").start()
    daemon = None
    try:
        captures, config = station(tmp_path, db_url, box)
        previous_table(db_url, captures)

        # The new `status`: reads the table as it is, migrates nothing.
        out = cli("status", "--config", str(config))
        assert out.returncode == 0, out.stderr
        assert revision(db_url) == PREVIOUS
        counts = re.search(r"^Jobs: (.*)$", out.stdout, re.M)
        assert counts is not None, out.stdout
        assert sorted(counts[1].split(", ")) == sorted(f"1 {s}" for s in STATES)

        # The new `run`: migrates, then every waiting file goes, once; nothing else does.
        daemon = start_daemon(tmp_path, config)
        assert revision(db_url) == SCHEMA_HEAD
        wait_for(lambda: len(box.state()["uploads"]) >= len(WAITING), 60,
                 what="every waiting file uploaded")
        wait_for(lambda: all(jobs_by_name(config)[f"{s}.mov"]["state"] == "done"
                             for s in WAITING), 20, interval=0.3, what="recorded as done")
        if db_url.startswith("sqlite"):
            # SQLite: a `db upgrade` does not change the schema under the running daemon.
            refused = cli("db", "upgrade", "--config", str(config))
            assert refused.returncode == 1 and "already using" in refused.stderr
        state = box.state()
        uploaded = Counter(u["key"].rsplit("/", 1)[1] for u in state["uploads"])
        assert uploaded == Counter(f"{s}.mov" for s in WAITING)
        reserved = Counter(r["file_name"] for r in state["reservations"])
        assert reserved == Counter(f"{s}.mov" for s in WAITING)
        jobs = jobs_by_name(config)
        assert {name: j["state"] for name, j in jobs.items()} == {
            f"{s}.mov": "done" if s in WAITING else s for s in STATES}
        assert len(jobs) == len(STATES)  # no second row for any file
    finally:
        if daemon is not None:
            daemon.stop()
        box.stop()


EXPAND = f'''"""test only: what a next version might add, additively

Revision ID: {{rev}}
Revises: {SCHEMA_HEAD}
"""

import sqlalchemy as sa
from alembic import op

revision = "{{rev}}"
down_revision = "{SCHEMA_HEAD}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("expand_test", sa.Column("name", sa.Text(), primary_key=True),
                    sa.Column("seen_at", sa.Float(), nullable=True))
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("expand_note", sa.Text(), nullable=True))


def downgrade() -> None:
    raise NotImplementedError
'''


def test_a_daemon_keeps_working_when_another_station_upgrades_the_table(
        tmp_path: Path, pg_db: str) -> None:
    box = Sandbox(tmp_path / "sandbox").start()
    daemon = None
    try:
        captures, config = station(tmp_path, pg_db, box)
        daemon = start_daemon(tmp_path, config)
        make_movie(captures / "jane" / "before.mov", frames=2)
        wait_for(lambda: states(pg_db).get("before.mov") == "done", 30,
                 what="before.mov uploaded")

        # Another station, one version ahead, migrates the shared table under this daemon.
        nxt = f"{int(SCHEMA_HEAD) + 1:04d}"
        folder = copy_with(tmp_path, f"{nxt}_expand_test.py", EXPAND.format(rev=nxt))
        probe = make_engine(f"sqlite:///{tmp_path / 'probe.db'}")
        assert violations(record(probe, folder)[nxt]) == []  # it keeps the rules itself
        probe.dispose()
        eng: Engine = make_engine(pg_db)
        upgrade(eng, nxt, folder)
        assert "expand_note" in {c["name"] for c in inspect(eng).get_columns("jobs")}
        assert current_revision(eng) == nxt
        eng.dispose()

        # This daemon, one schema version behind, still records and uploads new files.
        for name in ("after-1.mov", "after-2.mov"):
            make_movie(captures / "jane" / name, frames=2)
        wait_for(lambda: all(states(pg_db).get(n) == "done"
                             for n in ("after-1.mov", "after-2.mov")), 30,
                 what="files added after the upgrade uploaded")
        # This version's `status` refuses the newer table in one line (hence states() above).
        out = cli("status", "--config", str(config))
        assert out.returncode == 1 and nxt in out.stderr and SCHEMA_HEAD in out.stderr
        uploaded = Counter(u["key"].rsplit("/", 1)[1] for u in box.state()["uploads"])
        assert uploaded == Counter(["before.mov", "after-1.mov", "after-2.mov"])
        assert not [e for e in daemon.events()
                    if e.get("event") == "service.attention" and e.get("name") == "database"]
        assert daemon.popen is not None and daemon.popen.poll() is None

        # Restarted, this version refuses the newer table in one line naming both versions.
        assert daemon.stop() == 0
        again = cli("run", "--config", str(config), env={"UPLIFT_API_TOKEN": box.token})
        assert again.returncode == 1 and len(again.stderr.strip().splitlines()) == 1
        assert nxt in again.stderr and SCHEMA_HEAD in again.stderr
    finally:
        if daemon is not None:
            daemon.stop()
        box.stop()


def states(url: str) -> dict[str, str]:
    """The jobs' states, straight from the table."""
    eng = make_engine(url, create=False)
    try:
        with eng.connect() as conn:
            rows = conn.execute(text("SELECT rel_path, state FROM jobs")).all()
    finally:
        eng.dispose()
    return {Path(r.rel_path).name: r.state for r in rows}
