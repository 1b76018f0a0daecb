"""The QuickTime reader against real files from FFmpeg's mov muxer."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from support import make_movie

from daemon import movie
from daemon.movie import NotAMovie


def test_landscape_portrait_and_rotated(tmp_path: Path) -> None:
    assert movie.inspect(make_movie(tmp_path / "l.mov", 2, 320, 240)).orientation == "landscape"
    assert movie.inspect(make_movie(tmp_path / "p.mov", 2, 240, 320)).orientation == "portrait"
    # A phone's portrait video: landscape frames with a 90-degree display matrix.
    rotated = make_movie(tmp_path / "r.mov", 2, 320, 240, rotate=90)
    assert movie.inspect(rotated).orientation == "portrait"
    assert movie.inspect(make_movie(tmp_path / "u.mov", 2, 320, 240, rotate=180)
                         ).orientation == "landscape"


def test_creation_time_from_the_movie_header(tmp_path: Path) -> None:
    plain = movie.inspect(make_movie(tmp_path / "n.mov", 2))
    assert plain.creation_time is None
    stamped = make_movie(tmp_path / "c.mov", 2,
                         metadata={"creation_time": "2026-05-13T12:00:00.000000Z"})
    assert movie.inspect(stamped).creation_time == datetime(2026, 5, 13, 12, 0, tzinfo=UTC)


def test_apple_creationdate_wins_and_keeps_its_zone(tmp_path: Path) -> None:
    path = make_movie(tmp_path / "a.mov", 2, apple_tags=True, metadata={
        "creation_time": "2026-05-13T09:00:00.000000Z",
        "com.apple.quicktime.creationdate": "2026-05-13T14:00:00+0200"})
    when = movie.inspect(path).creation_time
    assert when == datetime(2026, 5, 13, 12, 0, tzinfo=UTC)
    assert when.utcoffset() == timedelta(hours=2)
    assert when.tzinfo == timezone(timedelta(hours=2))


def test_truncated_random_and_empty_files_are_refused_in_plain_words(tmp_path: Path) -> None:
    good = make_movie(tmp_path / "g.mov", 5)
    data = good.read_bytes()
    cut = tmp_path / "cut.mov"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(NotAMovie, match="recording is incomplete"):
        movie.inspect(cut)
    noise = tmp_path / "noise.mov"
    noise.write_bytes(random.Random(7).randbytes(100_000))
    with pytest.raises(NotAMovie, match="not a QuickTime movie"):
        movie.inspect(noise)
    empty = tmp_path / "empty.mov"
    empty.write_bytes(b"")
    with pytest.raises(NotAMovie, match="empty"):
        movie.inspect(empty)
    text = tmp_path / "text.mov"
    text.write_text("hello, this is not a movie at all\n" * 100)
    with pytest.raises(NotAMovie, match="not a QuickTime movie"):
        movie.inspect(text)
