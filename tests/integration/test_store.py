"""The job store on a real SQLite file: guarded transitions, atomic claims, recovery."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import pytest
from sqlalchemy import text

from daemon.jobs.left import VANISHED_REASONS, moved_reason
from daemon.jobs.models import IN_FLIGHT, JobState
from daemon.jobs.store import Ready, Store, TakenOver, TransitionError
from daemon.work.stuck import ABANDONED

NOW = 1_800_000_000.0


def ready(size: int = 10, mtime: int = 1) -> Ready:
    return Ready(size=size, mtime_ns=mtime, athlete_id="a" * 8, session_group_id="g" * 8,
                 file_name="x.mov", capture_time="2026-01-01T00:00:00.000Z",
                 camera_configuration="{}", movement_attributes="{}")


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store.open(f"sqlite:///{tmp_path / 'state' / 'jobs.db'}")
    yield s
    s.close()


def queued(store: Store, name: str, now: float = NOW) -> int:
    seen = store.observe(f"/w/jane/{name}", "/w", 10, 1, now)
    store.mark_ready(seen.job_id, ready(), now)
    return seen.job_id


def test_sqlite_settings_and_private_file(store: Store, tmp_path: Path) -> None:
    with store.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 10_000
    db = tmp_path / "state" / "jobs.db"
    assert db.stat().st_mode & 0o777 == 0o600
    assert db.parent.stat().st_mode & 0o777 == 0o700


def test_one_file_version_is_one_job(store: Store) -> None:
    a = store.observe("/w/jane/a.mov", "/w", 5, 1, NOW)
    b = store.observe("/w/jane/a.mov", "/w", 5, 1, NOW)
    assert a.new and a.job_id == b.job_id
    grown = store.observe("/w/jane/a.mov", "/w", 9, 2, NOW)  # still being written
    assert grown.job_id == a.job_id and grown.new
    store.mark_ready(a.job_id, ready(9, 2), NOW)
    job = store.claim(NOW)
    store.record_reservation(job.claim, "s1", "g", "http://u", NOW + 60, NOW)
    store.start_upload(job.claim, NOW)
    store.finish(job.claim, "etag", NOW)
    again = store.observe("/w/jane/a.mov", "/w", 9, 2, NOW)
    assert again.job_id == a.job_id and not again.new and again.state is JobState.DONE
    replaced = store.observe("/w/jane/a.mov", "/w", 11, 3, NOW)
    assert replaced.job_id != a.job_id and replaced.new


def test_transition_that_matches_no_row_is_an_error(store: Store) -> None:
    job_id = queued(store, "a.mov")
    with pytest.raises(TransitionError, match="needs the claim"):  # a job id, in flight
        store.fail(job_id, [JobState.RESERVED], NOW, "no claim given")
    job = store.claim(NOW)
    with pytest.raises(TransitionError, match="expected state uploading"):
        store.finish(job.claim, None, NOW)  # reserved, not uploading
    store.start_upload(job.claim, NOW)
    with pytest.raises(TransitionError, match="expected state reserved"):
        store.record_reservation(job.claim, "s", "g", "http://u", NOW + 60, NOW)
    assert store.get(job_id).state == JobState.UPLOADING


def test_claim_respects_due_time_and_order(store: Store) -> None:
    first, second = queued(store, "a.mov"), queued(store, "b.mov")
    job = store.claim(NOW)
    assert job.id == first and job.state == JobState.RESERVED and job.attempts == 1
    store.requeue(job.claim, [JobState.RESERVED], NOW, due=NOW + 30, reason="later")
    assert store.claim(NOW).id == second
    assert store.claim(NOW) is None
    assert store.next_due(NOW) == NOW + 30
    assert store.claim(NOW + 31).id == first


def test_concurrent_claims_take_each_job_once(store: Store) -> None:
    ids = {queued(store, f"f{i}.mov") for i in range(60)}
    taken: list[int] = []
    lock = threading.Lock()

    def claimer() -> None:
        while (job := store.claim(NOW)) is not None:
            with lock:
                taken.append(job.id)

    threads = [threading.Thread(target=claimer) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(taken) == sorted(ids)


def test_recover_requeues_in_flight_jobs_and_abandons_their_windows(store: Store) -> None:
    a, b = queued(store, "a.mov"), queued(store, "b.mov")
    claim = store.claim(NOW).claim
    store.record_reservation(claim, "s-a", "g", "http://u", NOW + 60, NOW)
    store.start_upload(claim, NOW)
    store.claim(NOW)
    assert store.recover(NOW + 1) == 2
    assert {store.get(a).state, store.get(b).state} == {JobState.QUEUED}
    assert store.get(a).attempts == 0  # a crash is not the job's failure
    assert [r.outcome for r in store.reservations(a)] == ["abandoned"]


def test_retry_puts_failed_jobs_back(store: Store) -> None:
    job_id = queued(store, "a.mov")
    store.fail(store.claim(NOW).claim, [JobState.RESERVED], NOW, "the server refused it")
    assert store.retry(None, NOW) == [job_id]
    job = store.get(job_id)
    assert job.state == JobState.QUEUED and job.last_error is None and job.attempts == 0


def test_claim_uses_the_state_index(store: Store) -> None:
    with store.engine.connect() as conn:
        plan = " ".join(str(r) for r in conn.execute(text(
            "EXPLAIN QUERY PLAN SELECT id FROM jobs WHERE state = 'queued' "
            "AND next_attempt_at <= 1 ORDER BY next_attempt_at, id LIMIT 1")))
    assert "ix_jobs_state_due" in plan


def test_reads_find_jobs_at_a_path_and_twins_of_a_video(store: Store) -> None:
    first = store.observe("/w/jane/a.mov", "/w", 5, 1, NOW).job_id
    store.fail(first, [JobState.PENDING], NOW, "recording is incomplete: no index (moov)")
    second = store.observe("/w/jane/a.mov", "/w", 9, 2, NOW).job_id
    store.mark_ready(second, dataclasses.replace(ready(9, 2), fingerprint="f"), NOW)
    assert [j.id for j in store.jobs_at("/w/jane/a.mov", [JobState.FAILED])] == [first]
    assert [j.id for j in store.twins("a" * 8, "f", 0, [JobState.QUEUED])] == [second]
    assert store.twins("a" * 8, "f", second, [JobState.QUEUED]) == []


def test_refusals_are_counted_and_reset_by_a_person(store: Store) -> None:
    job_id = queued(store, "a.mov")
    claim = store.claim(NOW).claim
    assert [store.count_refusal(claim, NOW) for _ in range(3)] == [1, 2, 3]
    store.fail(claim, [JobState.RESERVED], NOW, "refused 3 times")
    store.retry([job_id], NOW)
    assert store.get(job_id).refusals == 0


def test_paths_that_are_not_utf8_are_stored_losslessly(store: Store) -> None:
    import os

    path = os.fsdecode(b"/w/jane/caf\xe9.mov")
    job_id = store.observe(path, "/w", 5, 1, NOW).job_id
    assert store.get(job_id).path == path
    assert store.pending_paths() == [path]
    assert store.observe(path, "/w", 5, 1, NOW).job_id == job_id


def test_a_reader_never_holds_up_a_writer(store: Store) -> None:
    """Reads are plain deferred transactions: `status` or the console reading for a while
    does not delay the daemon's writes (they used to take the write lock too)."""
    import time

    from daemon.jobs.engine import read_tx

    job_id = queued(store, "a.mov")
    reading, release = threading.Event(), threading.Event()

    def reader() -> None:
        with read_tx(store.engine) as conn:
            conn.execute(text("SELECT count(*) FROM jobs")).scalar()
            reading.set()
            release.wait(5)

    t = threading.Thread(target=reader)
    t.start()
    assert reading.wait(5)
    started = time.monotonic()
    store.claim(NOW)  # a write while the read transaction is open
    took = time.monotonic() - started
    release.set()
    t.join()
    assert took < 0.5, f"a write waited {took:.2f}s for a reader"
    assert store.get(job_id).state == JobState.RESERVED


def test_a_pending_file_that_vanishes_ends_skipped(store: Store) -> None:
    job_id = store.observe("/w/bob/a.mov", "/w", 5, 1, NOW).job_id
    store.hold(job_id, "folder 'bob' is not ...", NOW)
    assert store.skip_pending("/w/bob/a.mov", NOW, "removed") == [job_id]
    assert store.get(job_id).state == JobState.SKIPPED
    assert store.skip_pending("/w/bob/a.mov", NOW, "removed") == []


def test_done_commits_are_durable_and_the_rest_are_not_slowed(store: Store) -> None:
    from daemon.jobs.engine import set_durable

    def level(conn) -> int:
        value = conn.execute(text("PRAGMA synchronous")).scalar()
        conn.rollback()  # the read began a transaction; the level changes only outside one
        return value

    with store.engine.connect() as conn:
        assert level(conn) == 1  # NORMAL
        set_durable(conn, True)
        assert level(conn) == 2  # FULL
        set_durable(conn, False)
        assert level(conn) == 1
    # finish() runs durable and leaves the pooled connection as it found it.
    queued(store, "a.mov")
    claim = store.claim(NOW).claim
    store.record_reservation(claim, "s", "g", "http://u", NOW + 60, NOW)
    store.start_upload(claim, NOW)
    store.finish(claim, None, NOW)
    with store.engine.connect() as conn:
        assert level(conn) == 1


def test_done_skips_an_earlier_failed_copy_of_the_same_path(store: Store) -> None:
    """An unfinished recording failed; the finished file at the same path was uploaded: the
    failure is moot (skipped, naming the job that replaced it); other paths are untouched."""
    old = store.observe("/w/jane/a.mov", "/w", 5, 1, NOW)
    store.fail(old.job_id, [JobState.PENDING], NOW, "not a finished QuickTime file")
    other = store.observe("/w/jane/b.mov", "/w", 5, 1, NOW)
    store.fail(other.job_id, [JobState.PENDING], NOW, "not a finished QuickTime file")
    new = store.observe("/w/jane/a.mov", "/w", 10, 2, NOW)
    assert new.new and new.job_id != old.job_id
    store.mark_ready(new.job_id, ready(10, 2), NOW)
    job = store.claim(NOW)
    store.record_reservation(job.claim, "s1", "g", "http://u", NOW + 60, NOW)
    store.start_upload(job.claim, NOW)
    store.finish(job.claim, "etag", NOW + 1)
    skipped = store.get(old.job_id)
    assert skipped.state == JobState.SKIPPED
    assert f"job {job.id}" in skipped.last_error
    assert store.get(other.job_id).state == JobState.FAILED
    assert store.get(job.id).state == JobState.DONE


@pytest.mark.parametrize("reason", [moved_reason("/w/jane/swing1.mov"), *VANISHED_REASONS])
def test_a_version_skipped_because_it_left_its_path_is_work_when_seen_there_again(
        store: Store, reason: str) -> None:
    """Issue 28, item 1: queued, then skipped as moved (or vanished): renamed back, the same
    version at the same path is settled again, and a rescan does not count it as known."""
    job_id = queued(store, "clip.mov")
    store.skip(job_id, [JobState.QUEUED], NOW + 1, reason)
    assert ("/w/jane/clip.mov", 10, 1) not in list(store.known_versions())
    again = store.observe("/w/jane/clip.mov", "/w", 10, 1, NOW + 2)
    assert (again.job_id, again.state, again.new) == (job_id, JobState.PENDING, True)


def test_a_version_skipped_for_its_content_or_failed_stays_known(store: Store) -> None:
    dup, bad = queued(store, "dup.mov"), queued(store, "bad.mov")
    store.skip(dup, [JobState.QUEUED], NOW + 1, "same video as job 9 (/w/jane/swing1.mov), "
                                                 "already uploaded for this athlete")
    store.fail(bad, [JobState.QUEUED], NOW + 1, "the movie has no video track")
    assert {("/w/jane/dup.mov", 10, 1), ("/w/jane/bad.mov", 10, 1)} <= \
        set(store.known_versions())
    for name in ("dup.mov", "bad.mov"):
        assert not store.observe(f"/w/jane/{name}", "/w", 10, 1, NOW + 2).new


def test_a_slot_let_go_puts_its_job_back_under_a_new_claim(store: Store) -> None:
    """Issue 29 item 5: an upload stuck on a hung share is let go (work/stuck.py). Its job is
    queued again, not claimed while its folder does not answer, and every write of the claim
    left behind, its closing boundary first, matches no row: an error, never a write."""
    job_id = queued(store, "a.mov")
    stale = store.claim(NOW).claim
    store.record_reservation(stale, "s-a", "g", "http://u", NOW + 60, NOW)
    store.start_upload(stale, NOW)
    store.abandon(stale, NOW + 1, ABANDONED)
    job = store.get(job_id)
    assert (job.state, job.attempts, job.last_error) == (JobState.QUEUED, 0, ABANDONED)
    assert job.claim_no == stale.no + 1 and job.check_session_id is None  # no boundary sent
    for write in (lambda: store.boundary(stale, NOW + 2),
                  lambda: store.progress(stale, 5, NOW + 2),
                  lambda: store.requeue(stale, IN_FLIGHT, NOW + 2, due=NOW, reason="x"),
                  lambda: store.abandon(stale, NOW + 2, ABANDONED)):
        with pytest.raises(TakenOver):
            write()
    store.absent = frozenset({"/w"})  # its folder is not answering: not claimed
    assert store.claim(NOW + 2) is None
    store.absent = frozenset()
    again = store.claim(NOW + 3)
    assert again.id == job_id and again.claim != stale
    store.record_reservation(again.claim, "s-b", "g", "http://u", NOW + 60, NOW + 3)
    store.start_upload(again.claim, NOW + 3)
    with pytest.raises(TakenOver):
        store.finish(stale, "etag", NOW + 4)
    store.finish(again.claim, "etag", NOW + 4)
    assert store.get(job_id).state == JobState.DONE


def test_a_slot_let_go_after_its_boundary_went_asks_uplift_first(store: Store) -> None:
    """Stuck after its closing boundary (closing the file, looking at it again): the upload
    may have landed, so Uplift is asked about its capture before anything is sent again."""
    job_id = queued(store, "a.mov")
    stale = store.claim(NOW).claim
    store.record_reservation(stale, "s-a", "g", "http://u", NOW + 60, NOW)
    store.start_upload(stale, NOW)
    store.boundary(stale, NOW)
    store.abandon(stale, NOW + 1, ABANDONED)
    assert store.get(job_id).check_session_id == "s-a"
