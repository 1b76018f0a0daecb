"""Issue 19, item 6: a write whose commit reached the database while its answer was lost (the
connection dropped right after COMMIT) is retried; finding the row already where it was going,
under this node's own claim, is success. A row moved by anyone else is still an error. On a real
SQLite file and a real PostgreSQL (db_url)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from dbfaults import drop_after_commit, is_done_write
from sqlalchemy.exc import OperationalError

from daemon.jobs.models import Claim, JobState
from daemon.jobs.store import Ready, Store, TakenOver, TransitionError

NOW = 1_800_000_000.0


def ready() -> Ready:
    return Ready(size=10, mtime_ns=1, athlete_id="a" * 8, session_group_id="g" * 8,
                 file_name="x.mov", capture_time="2026-01-01T00:00:00.000Z",
                 camera_configuration="{}", movement_attributes="{}")


@pytest.fixture
def stores(db_url: str) -> Iterator[tuple[Store, Store]]:
    """Two nodes on one job table (on SQLite: two processes' stores on one file)."""
    a, b = Store.open(db_url), Store.open(db_url)
    a.set_node("station-a", shared=["nas"])  # a shared folder: either node may claim its jobs
    b.set_node("station-b", shared=["nas"])
    yield a, b
    a.close()
    b.close()


def uploading(store: Store, name: str = "a.mov") -> Claim:
    seen = store.observe(f"/w/jane/{name}", "/w", 10, 1, NOW, shared_name="nas")
    store.mark_ready(seen.job_id, ready(), NOW)
    job = store.claim(NOW)
    assert job is not None and job.id == seen.job_id
    store.record_reservation(job.claim, "s1", "g", "http://u", NOW + 60, NOW)
    store.start_upload(job.claim, NOW)
    return job.claim


def test_done_whose_answer_was_lost_is_written_once_and_the_retry_succeeds(
        stores: tuple[Store, Store]) -> None:
    a, _ = stores
    claim = uploading(a)
    job_id = claim.job_id
    drop = drop_after_commit(a.engine, is_done_write)
    with pytest.raises(OperationalError):
        a.finish(claim, "etag-1", NOW + 1)
    assert drop.dropped == 1
    landed = a.get(job_id)
    assert landed.state == JobState.DONE and landed.etag == "etag-1"  # the commit did land
    a.finish(claim, "etag-1", NOW + 2)  # the recorder's retry: success, not TransitionError
    job = a.get(job_id)
    assert job.state == JobState.DONE and job.etag == "etag-1" and job.node == "station-a"
    assert [r.outcome for r in a.reservations(job_id)] == ["used"]
    a.set_archived(job_id, "/archive/a.mov", None, NOW + 3)  # the after-upload write goes on
    assert a.get(job_id).archived_path == "/archive/a.mov"


def test_a_retried_write_of_a_job_moved_by_another_node_is_still_an_error(
        stores: tuple[Store, Store]) -> None:
    a, b = stores
    claim = uploading(a)
    job_id = claim.job_id
    # a's requeue lands, its answer is lost; meanwhile b claims the job (a new claim).
    drop_after_commit(a.engine, lambda stmt, params: "queued" in list(
        params.values() if isinstance(params, dict) else params or ()))
    with pytest.raises(OperationalError):
        a.requeue(claim, [JobState.UPLOADING], NOW, due=NOW, reason="later")
    taken = b.claim(NOW + 1)
    assert taken is not None and taken.id == job_id
    with pytest.raises(TakenOver):
        a.requeue(claim, [JobState.UPLOADING], NOW, due=NOW, reason="later")
    with pytest.raises(TakenOver):
        a.finish(claim, None, NOW)
    row = a.get(job_id)
    assert (row.state, row.node, row.claim_no) == (JobState.RESERVED, "station-b",
                                                   taken.claim_no)


def test_the_same_claim_in_another_state_is_still_an_error(stores: tuple[Store, Store]) -> None:
    a, _ = stores
    seen = a.observe("/w/jane/b.mov", "/w", 10, 1, NOW)
    a.mark_ready(seen.job_id, ready(), NOW)
    job = a.claim(NOW)
    with pytest.raises(TransitionError, match="expected state uploading"):
        a.finish(job.claim, None, NOW)  # reserved, never uploading: not "already done"
    assert a.get(job.id).state == JobState.RESERVED
