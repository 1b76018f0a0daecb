"""Decisions about a settled file, as pure functions: the facts go in, a verdict comes out.

`classify` turns what the intake read of a file (its place, sidecar settings, movie header,
fingerprint) into Ready, Hold or Fail. `resolve_twins` decides what a second copy of a video
means: a duplicate, a file that moved while it waited, or one to wait for.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import PurePath

from daemon.config import CaptureSettings
from daemon.jobs.models import JobState
from daemon.jobs.store import Ready
from daemon.timeutil import iso_utc
from daemon.watch import layout
from daemon.watch.movie import MovieInfo

# The most one S3 POST can take (AWS: "The maximum allowed upload size is 5 GB").
MAX_UPLOAD = 5 * 1024**3
TOO_LARGE = ("the file is larger than 5 GiB, the most one upload to Uplift can take; split or "
             "trim the recording")


@dataclass(frozen=True)
class Hold:
    reason: str  # why it waits; it is looked at again when something changes


@dataclass(frozen=True)
class Fail:
    reason: str


@dataclass(frozen=True)
class Facts:
    """What the intake found out about one settled file."""

    rel: PurePath  # relative to its watch root
    size: int
    mtime: float
    mtime_ns: int
    now: float
    forced: bool = False  # an operator's `retry --force`: no movie checks
    settings: CaptureSettings | None = None
    settings_problem: str | None = None  # a capture.toml that cannot be used
    movie: MovieInfo | None = None
    not_a_movie: str | None = None  # why movie.inspect refused it
    fingerprint: str | None = None
    unreadable: str | None = None  # the file could not be read


def too_large(size: int) -> Fail | None:
    return Fail(TOO_LARGE) if size > MAX_UPLOAD else None


def classify(f: Facts, athletes: Mapping[str, str], config_source: str) -> Ready | Hold | Fail:
    if (big := too_large(f.size)) is not None:
        return big
    if f.settings_problem is not None or f.settings is None:
        return Hold(f"folder settings are invalid: {f.settings_problem}")
    if f.unreadable is not None:
        return Fail(f.unreadable)
    info = f.movie
    if f.not_a_movie is not None:
        if not f.forced:
            return Fail(f.not_a_movie)
        info = MovieInfo(None, None)
    assert info is not None
    taken = info.creation_time.timestamp() if info.creation_time else f.mtime
    taken = min(taken, f.now)
    local_day = datetime.fromtimestamp(taken).date()
    where = layout.place(f.rel, athletes, local_day, config_source)
    if where.problem:
        return Hold(where.problem)
    orientation = f.settings.camera_orientation
    if orientation == "auto":
        if info.orientation is None and not f.forced:
            return Fail("the movie has no video track")
        orientation = info.orientation or "landscape"
    camera = {**f.settings.camera, "camera_setup_selection": f.settings.camera_setup_selection,
              "camera_orientation": orientation}
    assert where.athlete_id and where.session_group_id
    return Ready(size=f.size, mtime_ns=f.mtime_ns, athlete_id=where.athlete_id,
                 session_group_id=where.session_group_id,
                 file_name=layout.safe_file_name(os.path.basename(str(f.rel))),
                 capture_time=iso_utc(taken), camera_configuration=json.dumps(camera),
                 movement_attributes=json.dumps(dict(f.settings.movement)),
                 fingerprint=f.fingerprint)


@dataclass(frozen=True)
class Twin:
    """Another job of the same athlete with the same video."""

    job_id: int
    path: str
    state: str
    file_there: bool  # its own path still holds that video


@dataclass(frozen=True)
class Queue:
    """Go ahead; first end these jobs, whose file moved to the new path."""

    moved_from: Sequence[Twin] = field(default_factory=tuple)


@dataclass(frozen=True)
class Skip:
    reason: str


def resolve_twins(twins: Sequence[Twin]) -> Queue | Skip | Hold:
    """Copies of one video for one athlete: upload it once. A waiting job whose file is no
    longer at its path has moved here (a rename, a session or athlete folder renamed): this
    path takes over. A twin that is being uploaded right now is waited for: if its file moved
    away before the bytes were read, this copy must still go."""
    moved = [t for t in twins if t.state in (JobState.PENDING, JobState.QUEUED)
             and not t.file_there]
    for t in twins:
        if t.state == JobState.DONE:
            return Skip(f"same video as job {t.job_id} ({t.path}), already uploaded for this "
                        f"athlete; set [upload] allow_duplicates = true to upload copies")
    for t in twins:
        if t.state in (JobState.RESERVED, JobState.UPLOADING):
            return Hold(f"the same video is being uploaded as job {t.job_id} ({t.path}); "
                        f"waiting for it to finish")
    for t in twins:
        if t.state == JobState.QUEUED and t.file_there:
            return Skip(f"same video as job {t.job_id} ({t.path}), already waiting to be "
                        f"uploaded for this athlete; set [upload] allow_duplicates = true to "
                        f"upload copies")
    return Queue(tuple(moved))
