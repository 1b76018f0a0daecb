"""pickup.look against real QuickTime bytes cut where a writer's close can leave them."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import qt_atoms as qt
from support import make_movie

from daemon.watch.pickup import Movie, Now, decide, look


def _version(path: Path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns


def test_cuts_of_a_real_movie(tmp_path: Path) -> None:
    movie = make_movie(tmp_path / "m.mov", 3).read_bytes()
    moov = movie.rindex(b"moov") - 4
    assert struct.unpack_from(">I", movie, moov)[0] == len(movie) - moov
    path = tmp_path / "cut.mov"
    for cut, expected in ((moov // 2, Movie.INCOMPLETE), (moov, Movie.INCOMPLETE),
                          (len(movie) - 1, Movie.INCOMPLETE), (len(movie), Movie.COMPLETE)):
        path.write_bytes(movie[:cut])
        f = look(str(path), _version(path), events=True)
        assert (f.movie, f.steady, f.closed) == (expected, True, True), cut
    stale = (len(movie) - 1, 0)  # the version observed before the last write
    assert not look(str(path), stale, events=True).steady
    path.write_bytes(b"hello, not a movie")
    assert look(str(path), _version(path), events=True).movie is Movie.NOT_A_MOVIE
    assert look(str(tmp_path / "gone.mov"), (0, 0), events=True).movie is Movie.UNREADABLE


def test_closes_of_a_movie_written_index_first(tmp_path: Path) -> None:
    """Issue 28 item 2: ftyp + moov + an mdat of size 0, then the samples appended. Every
    close tiles the file; only the one with every sample in is complete."""
    header, samples = qt.index_first(make_movie(tmp_path / "m.mov", 3).read_bytes())
    path = tmp_path / "cut.mov"
    for cut, expected in ((0, Movie.INCOMPLETE), (len(samples) // 2, Movie.INCOMPLETE),
                          (len(samples) - 1, Movie.INCOMPLETE), (len(samples), Movie.COMPLETE)):
        path.write_bytes(header + samples[:cut])
        f = look(str(path), _version(path), events=True)
        assert (f.movie, f.steady) == (expected, True), cut
        assert isinstance(decide(f), Now) == (expected is Movie.COMPLETE), cut
