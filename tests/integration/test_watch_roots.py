"""Watch roots' identities in the job table, on SQLite and a real PostgreSQL: a root replaced
by a bare mount point while files wait is not there, the claim leaves its jobs alone, a file
skipped as gone is looked at again when it is seen at the same version."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import write_config

from daemon import cli
from daemon.config import CaptureSettings, WatchRoot
from daemon.jobs.left import VANISHED_REASONS
from daemon.jobs.models import JobState
from daemon.jobs.store import Ready, Store
from daemon.watch.roots import Roots


def _ready(size: int, mtime_ns: int) -> Ready:
    return Ready(size=size, mtime_ns=mtime_ns, athlete_id="a" * 36, session_group_id="b" * 36,
                 file_name="x.mov", capture_time="2024-01-01T00:00:00Z",
                 camera_configuration="{}", movement_attributes="{}")


def _root(path: Path) -> WatchRoot:
    return WatchRoot(path=path, capture=CaptureSettings())


def _real_and_bare(db_url: str, tmp_path: Path) -> tuple[Store, Path, Path, WatchRoot]:
    """A store, a watch root `real` and a `bare` folder (an unmounted share's mount point)."""
    store = Store.open(db_url)
    store.set_node("station-1")
    real, bare = tmp_path / "real", tmp_path / "bare"
    real.mkdir()
    bare.mkdir()
    return store, real, bare, _root(real)


def test_replaced_root_is_not_there_and_not_claimed(db_url: str, tmp_path: Path) -> None:
    store, real, bare, root = _real_and_bare(db_url, tmp_path)
    said: list[str | None] = []
    back: list[WatchRoot] = []
    roots = Roots(store, [root], on_attention=lambda n, m: said.append(m), on_back=back.append)
    (real / "a.mov").write_bytes(b"x" * 10)
    seen = store.observe(str(real / "a.mov"), str(real), 10, 1, 1.0)
    roots.seen(root)
    store.mark_ready(seen.job_id, _ready(10, 1), 2.0)
    roots.check()
    assert roots.absent() == frozenset() and said == [None]

    # The share is unmounted: the same path is now another folder (a bare mount point).
    real.rename(tmp_path / "away")
    bare.rename(real)
    roots.check()
    assert roots.absent() == {str(real)}
    assert said[-1] is not None and "is not there (unmounted?)" in said[-1]
    job = store.get(seen.job_id)
    assert job is not None and job.state == JobState.PENDING  # waits, with the reason
    assert job.last_error == f"the folder {real} is not there (unmounted?)"
    store.mark_ready(seen.job_id, _ready(10, 1), 3.0)
    assert store.claim(4.0) is None  # its root is not there: not claimed here

    # Back: there again, claimable, the intake told to look again.
    real.rename(tmp_path / "bare-again")
    (tmp_path / "away").rename(real)
    roots.check()
    assert roots.absent() == frozenset() and said[-1] is None and back == [root]
    claimed = store.claim(5.0)
    assert claimed is not None and claimed.id == seen.job_id
    store.close()


def test_a_root_moved_to_new_storage_is_accepted_when_its_files_are_in_it(
        db_url: str, tmp_path: Path) -> None:
    store = Store.open(db_url)
    old = tmp_path / "w"
    old.mkdir()
    root = _root(old)
    roots = Roots(store, [root])
    (old / "a.mov").write_bytes(b"x" * 10)
    store.observe(str(old / "a.mov"), str(old), 10, 1, 1.0)
    roots.seen(root)
    old.rename(tmp_path / "old-disk")  # copied to new storage at the same path
    old.mkdir()
    (old / "a.mov").write_bytes(b"x" * 10)
    assert roots.there(root)
    assert roots.table.recorded(str(old)) == (old.stat().st_dev, old.stat().st_ino)
    store.close()


def test_a_file_skipped_as_gone_is_looked_at_again(db_url: str, tmp_path: Path) -> None:
    store = Store.open(db_url)
    root = str(tmp_path)
    path = str(tmp_path / "a.mov")
    seen = store.observe(path, root, 10, 1, 1.0)
    store.skip(seen.job_id, [JobState.PENDING], 2.0, VANISHED_REASONS[1])
    assert path not in {p for p, _, _ in store.known_versions()}  # a rescan looks at it
    again = store.observe(path, root, 10, 1, 3.0)
    assert again.job_id == seen.job_id and again.new and again.state == JobState.PENDING
    # A deliberate skip (not "gone") stays as it is.
    store.skip(seen.job_id, [JobState.PENDING], 4.0, "a duplicate")
    assert (path, 10, 1) in list(store.known_versions())
    assert not store.observe(path, root, 10, 1, 5.0).new
    store.close()


def test_roots_accept_takes_the_folder_now_there(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """A person says a changed folder is the root now (`uplift-capture roots accept PATH`)."""
    watch, db = tmp_path / "w", tmp_path / "jobs.db"
    watch.mkdir()
    cfg = write_config(tmp_path / "c.toml", watch=watch, db=db)
    store = Store.open(f"sqlite:///{db}")
    root = _root(watch)
    roots = Roots(store, [root])
    store.observe(str(watch / "a.mov"), str(watch), 10, 1, 1.0)
    roots.seen(root)
    watch.rename(tmp_path / "old")
    watch.mkdir()  # new storage, without the waiting file
    assert not roots.there(root)
    assert cli.main(["roots", "accept", str(watch), "--config", str(cfg)]) == 0
    assert "accepted" in capsys.readouterr().out
    roots.forget()  # what the running daemon does when the command pokes it
    assert roots.there(root)
    assert cli.main(["roots", "accept", str(tmp_path), "--config", str(cfg)]) == 2
    assert "is not a watch folder" in capsys.readouterr().out
    store.close()


def test_an_idle_root_costs_the_tick_no_query_and_is_still_watched(
        db_url: str, tmp_path: Path) -> None:
    """The health tick looks at every root every few seconds: a root under which nothing was
    ever seen is asked of the table once, not on each tick (idle CPU), and the first files
    seen under it make it watched as before."""
    from sqlalchemy import event

    store, real, bare, root = _real_and_bare(db_url, tmp_path)
    roots = Roots(store, [root])
    statements: list[str] = []
    event.listen(store.engine, "before_cursor_execute",
                 lambda conn, cursor, sql, *rest: statements.append(sql))
    roots.check()
    assert any("jobs" in s for s in statements)  # asked once: does anything wait there?
    statements.clear()
    roots.check()
    roots.check()
    assert statements == []

    (real / "a.mov").write_bytes(b"x" * 10)
    seen = store.observe(str(real / "a.mov"), str(real), 10, 1, 1.0)
    roots.seen(root)
    store.mark_ready(seen.job_id, _ready(10, 1), 2.0)
    real.rename(tmp_path / "away")
    bare.rename(real)  # unmounted: a bare mount point at the same path
    roots.check()
    assert roots.absent() == {str(real)}
    store.close()


def test_a_root_with_jobs_but_no_record_is_asked_again_within_a_minute(
        db_url: str, tmp_path: Path) -> None:
    """A table from before roots were recorded: an ended job under a root with no record. A
    `retry` whose poke did not reach the daemon makes it wait again without the intake seeing
    it: a tick within QUIET_FOR must still find it, record the root, and know a bare mount
    point. The ticks before cost no query (a thousand done rows made every tick scan them)."""
    from sqlalchemy import delete, event

    from daemon.jobs.models import RootIdentity
    from daemon.watch.roots import QUIET_FOR

    store, real, bare, root = _real_and_bare(db_url, tmp_path)
    (real / "a.mov").write_bytes(b"x" * 10)
    seen = store.observe(str(real / "a.mov"), str(real), 10, 1, 1.0)
    store.skip(seen.job_id, [JobState.PENDING], 2.0, "not a movie")
    with store.engine.begin() as conn:
        conn.execute(delete(RootIdentity))
    now = [100.0]
    roots = Roots(store, [root], clock=lambda: now[0])
    roots.check()
    statements: list[str] = []
    event.listen(store.engine, "before_cursor_execute",
                 lambda conn, cursor, sql, *rest: statements.append(sql))
    now[0] += QUIET_FOR / 2
    roots.check()
    assert statements == []  # nothing waits, nothing asked
    store.retry([seen.job_id], 3.0)  # from the CLI; its poke lost
    now[0] += QUIET_FOR / 2
    roots.check()
    assert roots.table.recorded(str(real)) is not None
    real.rename(tmp_path / "away")
    bare.rename(real)
    assert not roots.there(root)
    store.close()


def test_a_record_made_while_the_tick_reads_is_not_hidden_by_that_read(
        db_url: str, tmp_path: Path) -> None:
    """The tick reads a root's record (none yet) while the intake, on another thread, records
    it (files seen). The read that began first must not be cached over the record: the cached
    None hid it until the next poke, and a bare mount point then passed for the share."""
    store, real, bare, root = _real_and_bare(db_url, tmp_path)
    roots = Roots(store, [root])
    read = roots.table.recorded

    def interleaved(key: str):  # type: ignore[no-untyped-def]
        before = read(key)  # the tick's read: no record yet
        roots.table.recorded = read  # type: ignore[method-assign]
        (real / "a.mov").write_bytes(b"x" * 10)
        roots.seen(root)  # the intake records the root meanwhile
        return before

    roots.table.recorded = interleaved  # type: ignore[method-assign]
    roots.check()
    seen = store.observe(str(real / "a.mov"), str(real), 10, 1, 1.0)
    store.mark_ready(seen.job_id, _ready(10, 1), 2.0)
    real.rename(tmp_path / "away")
    bare.rename(real)  # unmounted: a bare mount point at the same path, a job waiting
    assert not roots.there(root)
    store.close()
