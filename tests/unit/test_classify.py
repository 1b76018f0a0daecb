"""The intake's decisions on their own: file facts -> Ready / Hold / Fail, and twins."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import PurePath

from daemon.config import CaptureSettings
from daemon.jobs.store import Ready
from daemon.watch.classify import (
    MAX_UPLOAD,
    Facts,
    Fail,
    Hold,
    Queue,
    Skip,
    Twin,
    classify,
    resolve_twins,
)
from daemon.watch.movie import MovieInfo

ATHLETE = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
NOW = 1_800_000_000.0


def facts(rel: str = "jane/swing.mov", **kw: object) -> Facts:
    base = dict(rel=PurePath(rel), size=1000, mtime=NOW - 60, mtime_ns=int((NOW - 60) * 1e9),
                now=NOW, settings=CaptureSettings(movement={"activity": "golf"}),
                movie=MovieInfo(datetime(2026, 5, 1, 12, tzinfo=UTC), "portrait"),
                fingerprint="f" * 64)
    base.update(kw)
    return Facts(**base)  # type: ignore[arg-type]


def test_a_movie_in_an_alias_folder_is_ready_with_its_metadata() -> None:
    v = classify(facts(), {"jane": ATHLETE}, "cfg")
    assert isinstance(v, Ready)
    assert v.athlete_id == ATHLETE and v.file_name == "swing.mov"
    assert json.loads(v.camera_configuration)["camera_orientation"] == "portrait"
    assert v.capture_time.startswith("2026-05-01T12:00:00")


def test_larger_than_5_gib_fails_before_anything_is_read() -> None:
    v = classify(facts(size=MAX_UPLOAD + 1, movie=None, settings=None), {"jane": ATHLETE}, "c")
    assert isinstance(v, Fail) and "5 GiB" in v.reason
    assert isinstance(classify(facts(size=MAX_UPLOAD), {"jane": ATHLETE}, "c"), Ready)


def test_unknown_folder_holds_and_says_how_to_fix_it() -> None:
    v = classify(facts("bob/a.mov"), {"jane": ATHLETE}, "/etc/c.toml")
    assert isinstance(v, Hold) and "[athletes]" in v.reason and "bob" in v.reason


def test_not_a_movie_fails_unless_forced() -> None:
    refused = facts(movie=None, not_a_movie="no QuickTime header")
    assert classify(refused, {"jane": ATHLETE}, "c") == Fail("no QuickTime header")
    forced = classify(facts(movie=None, not_a_movie="x", forced=True), {"jane": ATHLETE}, "c")
    assert isinstance(forced, Ready)


def test_bad_sidecar_holds_and_unreadable_fails() -> None:
    assert isinstance(classify(facts(settings=None, settings_problem="bad toml"),
                               {"jane": ATHLETE}, "c"), Hold)
    assert classify(facts(unreadable="permission denied"), {"jane": ATHLETE}, "c") == \
        Fail("permission denied")


def test_no_video_track_fails_with_auto_orientation() -> None:
    v = classify(facts(movie=MovieInfo(None, None)), {"jane": ATHLETE}, "c")
    assert v == Fail("the movie has no video track")


def twin(state: str, there: bool = True, job_id: int = 1) -> Twin:
    return Twin(job_id, f"/w/jane/old-{job_id}.mov", state, there)


def test_no_twins_queue() -> None:
    assert resolve_twins([]) == Queue()


def test_a_waiting_job_whose_file_moved_is_taken_over() -> None:
    for state in ("pending", "queued"):
        v = resolve_twins([twin(state, there=False)])
        assert isinstance(v, Queue) and [t.job_id for t in v.moved_from] == [1]


def test_a_copy_of_a_waiting_or_uploaded_video_is_skipped() -> None:
    assert isinstance(resolve_twins([twin("queued")]), Skip)
    done = resolve_twins([twin("done", there=False)])
    assert isinstance(done, Skip) and "already uploaded" in done.reason


def test_a_copy_of_a_video_being_uploaded_waits_for_that_upload() -> None:
    # If the upload's file moved away before it was read, this copy must still go.
    v = resolve_twins([twin("uploading", there=False)])
    assert isinstance(v, Hold) and "being uploaded" in v.reason
