"""`status` stays small whatever the table holds: counts for every state, the newest jobs of
each state up to a limit with how many more there are, failed first, week-old skipped jobs out
of the default listing; `--all` streams every job; a reader that closes the pipe early ends it
quietly. Over a real SQLite file and the real command."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from console_support import add_job, bulk_jobs
from sqlalchemy import update
from support import cli, write_config

from daemon import status
from daemon.jobs.models import Job, JobState
from daemon.jobs.store import Store

WEEK = 7 * 86400


def _table(tmp: Path) -> tuple[Path, Store]:
    (tmp / "w").mkdir()
    config = write_config(tmp / "config.toml", watch=tmp / "w", db=tmp / "jobs.db")
    store = Store.open(f"sqlite:///{tmp / 'jobs.db'}")
    bulk_jobs(store, 2000, state=JobState.SKIPPED, folder="dupes")
    bulk_jobs(store, 300, state=JobState.FAILED, folder="bad")
    with store.engine.begin() as conn:  # 500 of the skipped were set aside long ago
        conn.execute(update(Job).where(Job.state == JobState.SKIPPED, Job.id <= 500)
                     .values(updated_at=time.time() - WEEK - 60))
    for i in range(3):
        add_job(store, JobState.PENDING, f"new-{i}.mov")
    return config, store


def test_default_listing_is_bounded_and_says_how_many_more(tmp_path: Path) -> None:
    config, store = _table(tmp_path)
    try:
        doc = status.collect(store)
    finally:
        store.close()
    assert doc["counts"]["skipped"] == 2000 and doc["counts"]["failed"] == 300
    by_state: dict[str, list[dict]] = {}
    for j in doc["jobs"]:
        by_state.setdefault(j["state"], []).append(j)
    assert len(by_state["failed"]) == len(by_state["skipped"]) == status.LISTED
    assert len(by_state["pending"]) == 3
    assert doc["more"] == {"failed": 300 - status.LISTED, "skipped": 2000 - status.LISTED}
    assert doc["jobs"][0]["state"] == "failed"  # what needs a person comes first
    newest_skipped = max(j["id"] for j in by_state["skipped"])
    assert min(j["id"] for j in by_state["skipped"]) == newest_skipped - status.LISTED + 1
    assert len(json.dumps(doc)) < 150_000
    text = cli("status", "--config", str(config)).stdout
    assert f"... and {2000 - status.LISTED} more" in text and len(text.splitlines()) < 600


def test_week_old_skipped_leave_the_listing_but_not_the_counts(tmp_path: Path) -> None:
    _config, store = _table(tmp_path)
    try:
        doc = status.collect(store, now=time.time())
        listed = {j["id"] for j in doc["jobs"] if j["state"] == "skipped"}
        assert listed and min(listed) > 500
        # Only week-old skipped jobs left: none listed, all still counted and in --all.
        with store.engine.begin() as conn:
            conn.execute(update(Job).where(Job.state == JobState.SKIPPED)
                         .values(updated_at=time.time() - WEEK - 60))
        doc = status.collect(store)
        assert not [j for j in doc["jobs"] if j["state"] == "skipped"]
        assert doc["counts"]["skipped"] == 2000 and doc["more"]["skipped"] == 2000
    finally:
        store.close()


def test_all_streams_every_job_as_valid_json_and_text(tmp_path: Path) -> None:
    config, store = _table(tmp_path)
    store.close()
    out = cli("status", "--json", "--all", "--config", str(config))
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert len(doc["jobs"]) == 2303 and doc["counts"]["skipped"] == 2000
    ids = [j["id"] for j in doc["jobs"]]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert all("reason" in j for j in doc["jobs"])
    text = cli("status", "--all", "--config", str(config)).stdout
    assert text.count("\n  #") == 2303


def test_a_closed_pipe_ends_status_quietly(tmp_path: Path) -> None:
    config, store = _table(tmp_path)
    store.close()
    for extra in ([], ["--all"], ["--all", "--json"]):
        cmd = [sys.executable, "-m", "daemon", "status", *extra, "--config", str(config)]
        with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as p:
            assert p.stdout is not None and p.stderr is not None
            first = p.stdout.readline()
            p.stdout.close()  # as `| head -1` does
            err = p.stderr.read().decode()
            code = p.wait(timeout=60)
        assert first, extra
        assert code == 0 and "Traceback" not in err and "BrokenPipe" not in err, (extra, err)
