"""The QuickTime reader against real files from FFmpeg's mov muxer."""

from __future__ import annotations

import os
import random
import struct
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import qt_atoms as qt
from support import make_movie

from daemon.watch import movie
from daemon.watch.movie import NotAMovie


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


# --- damaged atoms (issue 19 item 5): NotAMovie with a reason, or no time; never a traceback --

def write(tmp_path: Path, data: bytes, name: str = "m.mov") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_hand_made_movie_is_read(tmp_path: Path) -> None:
    """The builder below is right: a well-formed one is read like a camera's."""
    info = movie.inspect(write(tmp_path, qt.movie(qt.mvhd(3_800_000_000), qt.video_trak(240, 320))))
    assert info.orientation == "portrait"
    assert info.creation_time == movie.QT_EPOCH + timedelta(seconds=3_800_000_000)


def test_an_empty_mvhd_is_a_damaged_header(tmp_path: Path) -> None:
    path = write(tmp_path, qt.movie(qt.atom(b"mvhd"), qt.video_trak()))
    with pytest.raises(NotAMovie, match=r"movie header \(mvhd\) is damaged"):
        movie.inspect(path)


def test_an_empty_tkhd_is_a_damaged_track(tmp_path: Path) -> None:
    path = write(tmp_path, qt.movie(qt.mvhd(), qt.atom(b"trak", qt.atom(b"tkhd"))))
    with pytest.raises(NotAMovie, match=r"track header \(tkhd\) is damaged"):
        movie.inspect(path)


def test_a_64_bit_mvhd_time_past_year_9999_is_no_time(tmp_path: Path) -> None:
    path = write(tmp_path, qt.movie(qt.mvhd(2**64 - 1, version=1), qt.video_trak()))
    assert movie.inspect(path) == movie.MovieInfo(None, "landscape")


def test_an_apple_date_that_has_no_timestamp_is_no_time(tmp_path: Path) -> None:
    """0001-01-01 in a zone east of UTC is before year 1 in UTC: classify cannot use it."""
    key = b"com.apple.quicktime.creationdate"
    keys = qt.atom(b"keys", bytes(4), (1).to_bytes(4, "big"),
                   (8 + len(key)).to_bytes(4, "big"), b"mdta", key)
    ilst = qt.atom(b"ilst", qt.atom((1).to_bytes(4, "big"),
                                    qt.atom(b"data", bytes(8), b"0001-01-01T00:00:00+0100")))
    path = write(tmp_path, qt.movie(qt.mvhd(), qt.video_trak(), qt.atom(b"meta", keys, ilst)))
    assert movie.inspect(path) == movie.MovieInfo(None, "landscape")


class CountingFile:
    """A real file object that counts the bytes read from it."""

    def __init__(self, f):
        self.f, self.read_bytes = f, 0

    def seek(self, pos: int) -> int:
        return self.f.seek(pos)

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        self.read_bytes += len(data)
        return data


def test_a_moov_over_the_cap_is_refused_unread(tmp_path: Path) -> None:
    """A 64 MiB + 1 index (a hole: no disk used) is refused without reading it."""
    head = qt.ftyp() + qt.atom(b"mdat", bytes(32))
    size = len(head) + 8 + movie.MAX_MOOV + 1
    path = write(tmp_path, head + (8 + movie.MAX_MOOV + 1).to_bytes(4, "big") + b"moov")
    os.truncate(path, size)
    assert movie.MAX_MOOV == 64 * 1024 * 1024
    with pytest.raises(NotAMovie, match=r"index \(moov\) is larger than the 64 MiB"):
        movie.inspect(path)
    with open(path, "rb") as f:
        counted = CountingFile(f)
        with pytest.raises(NotAMovie):
            movie.read(counted, size)
    assert counted.read_bytes < 100


def test_fingerprint_and_inspect_never_block_on_a_fifo(tmp_path: Path) -> None:
    """The belt behind the intake's lstat: a FIFO swapped in is refused at once, not waited on
    (without O_NONBLOCK open() blocks until a writer comes, and this test would hang)."""
    pipe = tmp_path / "pipe.mov"
    os.mkfifo(pipe)
    with pytest.raises(OSError, match=r"not a regular file \(a pipe\)"):
        movie.inspect(pipe)
    with pytest.raises(OSError):
        movie.fingerprint(pipe, 0)
    with pytest.raises(OSError, match=r"\(a folder\)"):
        movie.inspect(tmp_path)


# --- a movie written index-first (issue 28 item 2): complete only with every sample in ---------

def test_an_index_first_movie_is_complete_only_when_every_sample_is_in(tmp_path: Path) -> None:
    """ftyp + moov + an mdat of size 0 ("to the end"), then the samples appended: the atoms
    tile the file at every length; its sample tables say how long it must be."""
    data = make_movie(tmp_path / "m.mov", 5, rotate=90).read_bytes()
    header, samples = qt.index_first(data)
    whole = len(header) + len(samples)
    for cut in (0, 1, len(samples) // 2, len(samples) - 1):
        path = write(tmp_path, header + samples[:cut])
        with pytest.raises(NotAMovie, match=rf"recording is incomplete: the media its index "
                           rf"\(moov\) lists runs to {whole:,} bytes, the file has "
                           rf"{len(header) + cut:,} \(still being written, or cut short\)"):
            movie.inspect(path)
    done = movie.inspect(write(tmp_path, header + samples))
    assert done == movie.inspect(tmp_path / "m.mov") == movie.MovieInfo(None, "portrait")
    # Bytes after the last sample (a `free` atom, or an mdat that ran on) change nothing.
    assert movie.inspect(write(tmp_path, header + samples + bytes(100))) == done


def test_the_index_is_read_not_the_samples(tmp_path: Path) -> None:
    """Completeness costs the moov, whatever the size of the media: 1 GiB named, a hole."""
    head = qt.ftyp() + qt.atom(b"moov", qt.mvhd(), qt.track_with_samples(
        qt.sample_tables([0], [(1, 1)], [2**30])))
    body = len(head) + 8
    stbl = qt.sample_tables([body], [(1, 1)], [2**30])
    path = write(tmp_path, qt.ftyp() + qt.atom(b"moov", qt.mvhd(), qt.track_with_samples(stbl))
                 + struct.pack(">I4s", 0, b"mdat"))
    for size in (body + 2**30 - 1, body + 2**30):
        os.truncate(path, size)
        with open(path, "rb") as f:
            counted = CountingFile(f)
            try:
                movie.read(counted, size)
                complete = True
            except NotAMovie as exc:
                assert "incomplete" in str(exc)
                complete = False
        assert complete == (size == body + 2**30)
        assert counted.read_bytes <= body + 3 * movie.HEADER_READ  # the top atoms' headers


def stbl_movie(tmp_path: Path, stbl: bytes, media: int) -> Path:
    """A hand-made movie whose one track's samples are `media` bytes after its moov."""
    return write(tmp_path, qt.ftyp() + qt.atom(b"moov", qt.mvhd(), qt.track_with_samples(stbl))
                 + qt.atom(b"mdat", bytes(media)))


@pytest.mark.parametrize(("stbl", "needs"), ids=[
    "listed sizes", "backwards", "one size, 64-bit offsets", "sound size 1", "none"], argvalues=[
    # Chunks of 2, 2, then 3 samples of listed sizes: the furthest (at 30) holds 5+6+7.
    (qt.sample_tables([0, 10, 30], [(1, 2), (3, 3)], [1, 2, 3, 4, 5, 6, 7]), 48),
    # The same laid out backwards: the furthest chunk is the first one.
    (qt.sample_tables([40, 10], [(1, 2)], [3, 4, 5, 6]), 47),
    # One size for all (stsz sample_size), 64-bit offsets.
    (qt.sample_tables([0, 100], [(1, 10)], 7, wide=True), 170),
    # QuickTime sound's size 1 (an audio frame, not a byte): only the chunk's first byte.
    (qt.sample_tables([0, 100], [(1, 1000)], 1), 101),
    # No samples named (a fragmented movie's tables are empty).
    (qt.sample_tables([], [], []), 0),
])
def test_sample_tables(tmp_path: Path, stbl: bytes, needs: int) -> None:
    base = len(qt.ftyp()) + len(qt.atom(b"moov", qt.mvhd(), qt.track_with_samples(stbl))) + 8
    shifted = _shift(stbl, base)
    assert movie.inspect(stbl_movie(tmp_path, shifted, needs)).orientation == "landscape"
    if needs:
        with pytest.raises(NotAMovie, match="recording is incomplete"):
            movie.inspect(stbl_movie(tmp_path, shifted, needs - 1))


def _shift(stbl: bytes, base: int) -> bytes:
    buf = bytearray(stbl)
    qt._shift_chunks(buf, 0, len(buf), base)
    return bytes(buf)


@pytest.mark.parametrize("stbl", ids=[
    "more samples than sizes", "runs out of order", "chunk 0", "stco count", "stsc count"],
    argvalues=[
    # More samples in chunks than sizes listed.
    qt.sample_tables([0, 10], [(1, 3)], [1, 2, 3]),
    # Runs out of order.
    qt.sample_tables([0, 10, 20], [(2, 1), (1, 1)], [1, 2, 3]),
    # A first chunk of 0 (they count from 1).
    qt.sample_tables([0], [(0, 1)], [1]),
    # Entry counts past the table's end.
    qt.atom(b"stbl", qt.full(b"stco", "I", 5)),
    qt.atom(b"stbl", qt.full(b"stco", "II", 1, 0), qt.full(b"stsc", "I", 9),
            qt.full(b"stsz", "I", 0)),
])
def test_damaged_sample_tables_are_named(tmp_path: Path, stbl: bytes) -> None:
    with pytest.raises(NotAMovie, match="not a QuickTime movie: its sample tables are damaged"):
        movie.inspect(stbl_movie(tmp_path, stbl, 100))
