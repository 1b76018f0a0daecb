"""The athlete directory's writes against real job tables (issue 22): a link changed before a
job is reserved sends its queued files back to be settled with the new link; a job already
uploading keeps the athlete it was reserved with (and the log says so); the commands refuse in
one line against a table the service has not upgraded to 0007."""

from __future__ import annotations

from pathlib import Path

from console_support import add_job
from support import cli, write_config

from daemon.jobs import directory, schema
from daemon.jobs import engine as engine_mod
from daemon.jobs.athletes import AthleteTable
from daemon.jobs.models import JobState
from daemon.jobs.store import Store

TOM = "0b6f0c52-1d0e-4c3a-9a5e-2f1f4b7d9e01"


def test_a_changed_link_relooks_queued_files_and_keeps_uploading_ones(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'jobs.db'}", migrate=True)
    try:
        moving = add_job(store, JobState.UPLOADING, "moving.mov", folder="Tom")
        queued = add_job(store, JobState.QUEUED, "queued.mov", folder="Tom")
        other = add_job(store, JobState.QUEUED, "other.mov", folder="Tommy")
        changed = AthleteTable(store).put([directory.link("Tom", TOM)], "me", "here", 1.0)
        assert changed.requeued == [queued]
        assert [job_id for job_id, _ in changed.kept] == [moving]
        states = {j.id: (j.state, j.last_error) for j in store.jobs()}
        assert states[queued][0] == JobState.PENDING and "changed" in states[queued][1]
        assert states[moving][0] == JobState.UPLOADING
        assert states[other][0] == JobState.QUEUED  # another folder with the same start
        assert AthleteTable(store).remove("Tom", 2.0) is not None
        assert AthleteTable(store).remove("Tom", 3.0) is None
    finally:
        store.close()


def test_commands_refuse_a_table_older_than_0007_in_one_line(tmp_path: Path) -> None:
    db = tmp_path / "jobs.db"
    engine = engine_mod.make_engine(f"sqlite:///{db}")
    schema.upgrade(engine, "0006")
    engine.dispose()
    config = write_config(tmp_path / "config.toml", watch=tmp_path, db=db)
    out = cli("athletes", "add", "Tom", TOM, "--config", str(config))
    assert out.returncode == 1
    assert out.stderr.count("\n") == 1 and "restart it" in out.stderr
    assert "0007" in out.stderr


def test_the_commands_say_what_happens_to_the_files_and_only_that(tmp_path: Path) -> None:
    """Issue 30: `remove` does not say queued files "take the new link"; `add` does not say
    waiting files "go now" while their watch folder is missing; no daemon log line (e.g.
    athletes.kept) beside the command's own summary."""
    store = Store.open(f"sqlite:///{tmp_path / 'jobs.db'}", migrate=True)
    try:
        AthleteTable(store).put([directory.link("Tom", TOM)], "me", "here", 1.0)
        add_job(store, JobState.UPLOADING, "moving.mov", folder="Tom")
        add_job(store, JobState.QUEUED, "queued.mov", folder="Tom")
        held = add_job(store, JobState.PENDING, "held.mov", folder="Ana")
        store.hold(held, "folder 'Ana' is not an athlete UUID or an alias in [athletes]", 2.0)
    finally:
        store.close()
    gone = tmp_path / "unmounted"
    config = write_config(tmp_path / "config.toml", watch=gone, db=tmp_path / "jobs.db")
    out = cli("athletes", "remove", "Tom", "--config", str(config))
    assert out.returncode == 0, out.stderr
    assert "1 queued file(s) go back to waiting for an athlete" in out.stdout
    assert "new link" not in out.stdout
    assert "already being uploaded" in out.stdout
    assert "athletes.kept" not in out.stdout + out.stderr, out.stdout
    assert out.stderr == ""
    out = cli("athletes", "add", "Ana", TOM, "--config", str(config))
    assert out.returncode == 0, out.stderr
    assert "go now" not in out.stdout
    assert f"its 1 waiting file(s) go once they can be read (the watch folder {gone} is " \
           f"missing)" in out.stdout
