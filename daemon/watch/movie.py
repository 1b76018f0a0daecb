"""A short reader of the few QuickTime atoms the daemon needs.

It checks that top-level atoms tile the file, a `moov` is present and every sample its
sample tables name is inside the file (a finished recording: a recorder that writes the index
first, then an `mdat` of size 0 "to the end" and appends to it, tiles the file from its first
close on), and reads the creation time (mvhd, or Apple's com.apple.quicktime.creationdate) and the
displayed orientation of the first video track (tkhd size and display matrix). It never reads
media data: the sample tables are in the `moov`. A dependency (e.g. pymediainfo, which
needs libmediainfo) is heavier than these ~250 lines.

It is total: any bytes end in MovieInfo or NotAMovie with a reason, and it never reads more
than MAX_READ of any file (tests/unit/test_movie_props.py fuzzes both).
"""

from __future__ import annotations

import hashlib
import operator
import os
import struct
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from typing import BinaryIO

from daemon.watch.regular import open_regular

QT_EPOCH = datetime(1904, 1, 1, tzinfo=UTC)
# A two-hour 4K capture's moov is a few MiB; one this large is not a camera's movie (and is
# read whole, so the cap is also the memory one file can cost).
MAX_MOOV = 64 * 1024 * 1024
# A fragmented movie has a moof/mdat pair per fragment (two hours of 1 s fragments: 14,400).
MAX_TOP_ATOMS = 100_000
HEADER_READ = 16
MAX_READ = MAX_MOOV + HEADER_READ * MAX_TOP_ATOMS  # the most inspect() reads of any file
# Atoms a QuickTime or ISO movie may start with; anything else is not a movie.
FIRST_ATOMS = {b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot", b"uuid", b"junk",
               b"pdin", b"styp", b"meta", b"PICT"}


class NotAMovie(Exception):
    """The file is not a complete QuickTime movie; the message is for a coach."""


@dataclass(frozen=True)
class MovieInfo:
    creation_time: datetime | None
    orientation: str | None  # portrait | landscape as displayed, None without a video track


def _atoms(buf: bytes, start: int = 0,
           end: int | None = None) -> Iterator[tuple[bytes, int, int]]:
    end = len(buf) if end is None else end
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", buf, pos)
        header = 8
        if size == 1:
            if pos + 16 > end:
                return
            size = struct.unpack_from(">Q", buf, pos + 8)[0]
            header = 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            return
        yield kind, pos + header, pos + size
        pos += size


def _top_level(f: BinaryIO, file_size: int) -> dict[bytes, tuple[int, int]]:
    """Walk top-level atoms; they must tile the file exactly."""
    found: dict[bytes, tuple[int, int]] = {}
    pos = 0
    first = True
    count = 0
    while pos < file_size:
        count += 1
        if count > MAX_TOP_ATOMS:
            raise NotAMovie(f"not a QuickTime movie: it has more than {MAX_TOP_ATOMS} "
                            f"top-level atoms")
        f.seek(pos)
        head = f.read(HEADER_READ)
        if len(head) < 8:
            raise NotAMovie("recording is incomplete: the file ends inside an atom header")
        size, kind = struct.unpack_from(">I4s", head)
        header = 8
        if size == 1:
            if len(head) < 16:
                raise NotAMovie("recording is incomplete: the file ends inside an atom header")
            size, header = struct.unpack_from(">Q", head, 8)[0], 16
        elif size == 0:
            size = file_size - pos
        if (first and kind not in FIRST_ATOMS) or size < header:
            raise NotAMovie("not a QuickTime movie")
        first = False
        if pos + size > file_size:
            if b"moov" not in found and kind != b"moov":
                raise NotAMovie("recording is incomplete: no index (moov)")
            raise NotAMovie("recording is incomplete: the file is shorter than its atoms say")
        found.setdefault(kind, (pos + header, pos + size))
        pos += size
    if b"moov" not in found:
        raise NotAMovie("recording is incomplete: no index (moov)")
    return found


def _usable(when: datetime | None) -> datetime | None:
    """A time classify can turn into a timestamp and a local day; else none (the file's mtime
    is used): a camera with a garbage clock must not stop its movie."""
    if when is None:
        return None
    try:
        datetime.fromtimestamp(when.timestamp())
    except (ValueError, OverflowError, OSError):
        return None
    return when


def _mvhd_time(body: bytes) -> datetime | None:
    if len(body) < 4 or len(body) < (12 if body[0] == 1 else 8):
        raise NotAMovie("not a QuickTime movie: its movie header (mvhd) is damaged")
    secs = struct.unpack_from(">Q" if body[0] == 1 else ">I", body, 4)[0]
    if not secs:
        return None
    try:
        return _usable(QT_EPOCH + timedelta(seconds=secs))
    except OverflowError:  # a 64-bit time past the year 9999
        return None


def _tkhd_orientation(body: bytes) -> str | None:
    version = body[0] if body else 0
    off = 4 + (32 if version == 1 else 20) + 8 + 8  # times/ids/duration, reserved, layer..
    if len(body) < off + 44:
        raise NotAMovie("not a QuickTime movie: a track header (tkhd) is damaged")
    a, b, _u, c, d = struct.unpack_from(">iiiii", body, off)
    width, height = struct.unpack_from(">II", body, off + 36)
    if not width or not height:
        return None  # sound or metadata track
    rotated = a == 0 and d == 0 and b != 0 and c != 0  # 90 or 270 degrees
    if rotated:
        width, height = height, width
    return "portrait" if height > width else "landscape"


def _meta_creationdate(buf: bytes, start: int, end: int) -> datetime | None:
    """com.apple.quicktime.creationdate from a `meta` atom's body (keys + ilst)."""
    # QuickTime's meta has no version/flags; ISO's has 4 bytes of them. Try both.
    for skip in (0, 4):
        keys: list[bytes] = []
        for kind, s, e in _atoms(buf, start + skip, end):
            if kind == b"keys" and e - s >= 8:
                count = struct.unpack_from(">I", buf, s + 4)[0]
                pos = s + 8
                for _ in range(count):
                    if pos + 8 > e:
                        break
                    size = struct.unpack_from(">I", buf, pos)[0]
                    keys.append(buf[pos + 8:pos + size])
                    pos += max(size, 8)
            elif kind == b"ilst":
                for item, s2, e2 in _atoms(buf, s, e):
                    index = struct.unpack(">I", item)[0]
                    if not 0 < index <= len(keys) or \
                            keys[index - 1] != b"com.apple.quicktime.creationdate":
                        continue
                    for k3, s3, e3 in _atoms(buf, s2, e2):
                        if k3 == b"data" and e3 - s3 > 8:
                            return _usable(_parse_date(buf[s3 + 8:e3].decode("utf-8", "replace")))
    return None


def _parse_date(text: str) -> datetime | None:
    text = text.strip()
    for attempt in (text, text[:-5] + text[-5:-2] + ":" + text[-2:] if len(text) > 5 else text):
        try:
            value = datetime.fromisoformat(attempt.replace("Z", "+00:00"))
        except ValueError:
            continue
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return None


def inspect(path: str | os.PathLike[str]) -> MovieInfo:
    """Raise NotAMovie for anything that is not a complete QuickTime movie (and OSError,
    regular.NotRegularFile among them, for a file that cannot be read)."""
    with open_regular(path) as f:
        return read(f, os.fstat(f.fileno()).st_size)


def read(f: BinaryIO, size: int) -> MovieInfo:
    """inspect() of an open file of `size` bytes: MovieInfo or NotAMovie, whatever the bytes."""
    try:
        return _read(f, size)
    except (LookupError, ValueError, ArithmeticError, struct.error) as exc:
        # Every case found is handled by name; this keeps the reader total for the next one
        # (else: a traceback at each rescan and a file pending for ever). The fuzz test fails
        # on any input that gets here, so each is then handled by name too.
        raise NotAMovie("not a QuickTime movie: its atoms are damaged") from exc


def _read(f: BinaryIO, size: int) -> MovieInfo:
    if size == 0:
        raise NotAMovie("the file is empty")
    top = _top_level(f, size)
    start, end = top[b"moov"]
    if end - start > MAX_MOOV:
        raise NotAMovie(f"not a QuickTime movie: its index (moov) is larger than the "
                        f"{MAX_MOOV >> 20} MiB a camera's movie has")
    f.seek(start)
    moov = f.read(end - start)
    media_end = _media_end(moov)
    if media_end > size:
        raise NotAMovie(f"recording is incomplete: the media its index (moov) lists runs to "
                        f"{media_end:,} bytes, the file has {size:,} (still being written, or "
                        f"cut short)")
    return _from_moov(moov)


def _from_moov(moov: bytes) -> MovieInfo:
    creation: datetime | None = None
    orientation: str | None = None
    apple: datetime | None = None
    for kind, s, e in _atoms(moov):
        if kind == b"mvhd":
            creation = creation or _mvhd_time(moov[s:e])
        elif kind == b"trak" and orientation is None:
            for k2, s2, e2 in _atoms(moov, s, e):
                if k2 == b"tkhd":
                    orientation = _tkhd_orientation(moov[s2:e2])
        elif kind == b"meta":
            apple = apple or _meta_creationdate(moov, s, e)
        elif kind == b"udta":
            for k2, s2, e2 in _atoms(moov, s, e):
                if k2 == b"meta":
                    apple = apple or _meta_creationdate(moov, s2, e2)
    # Apple's tag carries the local time zone the camera recorded in; prefer it.
    return MovieInfo(apple or creation, orientation)


def _media_end(moov: bytes) -> int:
    """Where the furthest sample any track's sample tables name ends (0: none named, as in a
    fragmented movie, whose samples its fragments name)."""
    end = 0
    for kind, s, e in _atoms(moov):
        if kind != b"trak":
            continue
        stbl = _child(moov, (s, e), b"mdia", b"minf", b"stbl")
        if stbl is not None:
            end = max(end, _track_end(moov, {k: (s2, e2) for k, s2, e2 in _atoms(moov, *stbl)}))
    return end


def _child(buf: bytes, span: tuple[int, int], *path: bytes) -> tuple[int, int] | None:
    for name in path:
        found = next(((s, e) for kind, s, e in _atoms(buf, *span) if kind == name), None)
        if found is None:
            return None
        span = found
    return span


class _Damaged(Exception):
    """A sample table whose counts overrun it or each other."""


def _table(buf: bytes, span: tuple[int, int], skip: int, width: int,
           per_entry: int = 1) -> array[int]:
    """A full box's table of big-endian `width`-byte fields, `per_entry` to an entry: the
    entry count is the last 4 bytes before `skip`, the first entry at `skip`. A copy of the
    table only (at most the moov's size), never the samples."""
    s, e = span
    if e - s < skip:
        raise _Damaged
    count = struct.unpack_from(">I", buf, s + skip - 4)[0] * per_entry
    if count * width > e - s - skip:
        raise _Damaged
    table = array("I" if width == 4 else "Q", buf[s + skip:s + skip + count * width])
    if BIG_ENDIAN_HOST:
        return table
    table.byteswap()
    return table


BIG_ENDIAN_HOST = struct.pack("=I", 1) == struct.pack(">I", 1)


def _track_end(moov: bytes, stbl: dict[bytes, tuple[int, int]]) -> int:
    """End of the furthest chunk: its offset (stco/co64) plus the sizes (stsz) of the samples
    the sample-to-chunk runs (stsc) put in it. Without sizes, a chunk counts as its first byte;
    so does each sample of a uniform size 1, QuickTime's sound convention where a sample is an
    audio frame whose bytes the sound description sets: never more than is really there."""
    try:
        if b"co64" in stbl:
            offsets = _table(moov, stbl[b"co64"], 8, 8)
        elif b"stco" in stbl:
            offsets = _table(moov, stbl[b"stco"], 8, 4)
        else:
            return 0
        if not offsets:
            return 0
        if b"stsz" not in stbl or b"stsc" not in stbl:
            return max(offsets) + 1
        s, e = stbl[b"stsz"]
        if e - s < 12:
            raise _Damaged
        uniform = struct.unpack_from(">I", moov, s + 4)[0]
        runs = _table(moov, stbl[b"stsc"], 8, 4, per_entry=3)
        sizes = None if uniform else _table(moov, stbl[b"stsz"], 12, 4)
        return _runs_end(offsets, runs, uniform, sizes)
    except _Damaged:
        raise NotAMovie("not a QuickTime movie: its sample tables are damaged") from None


def _runs_end(offsets: array[int], runs: array[int], uniform: int,
              sizes: array[int] | None) -> int:
    # Each stsc entry (first chunk, samples per chunk, description) holds up to the next one's
    # first chunk. A two-hour movie has ~10^6 samples, so chunk ends are summed in C-level
    # loops (map, slices, prefix sums), not a Python loop per chunk.
    prefix: array[int] | None = None  # of the sizes, made once a chunk holds several samples
    end, sample, chunks = 0, 0, len(offsets)
    for i in range(0, len(runs), 3):
        first, per = runs[i] - 1, runs[i + 1]
        last = runs[i + 3] - 1 if i + 3 < len(runs) else chunks
        if first < 0 or last < first:
            raise _Damaged
        first, last = min(first, chunks), min(last, chunks)
        n = last - first
        if not n or not per:
            continue
        if sizes is None:
            end = max(end, max(offsets[first:last]) + (per * uniform if uniform > 1 else 1))
        else:
            if sample + n * per > len(sizes):
                raise _Damaged  # more samples in chunks than sizes
            if per == 1:
                spans: Iterable[int] = sizes[sample:sample + n]
            else:
                if prefix is None:
                    prefix = array("Q", accumulate(sizes, initial=0))
                spans = map(operator.sub, prefix[sample + per:sample + (n + 1) * per:per],
                            prefix[sample:sample + n * per:per])
            end = max(end, max(map(operator.add, offsets[first:last], spans)))
        sample += n * per
    return end


FINGERPRINT_SPAN = 1024 * 1024


def fingerprint(path: str | os.PathLike[str], size: int) -> str:
    """sha256 of the size and the first and last MiB. Two recordings never share both ends of
    a QuickTime file (the header and the index carry durations, offsets and creation times), so
    this finds a re-copied video at the cost of 2 MiB read, not a second read of the whole."""
    h = hashlib.sha256(str(size).encode())
    with open_regular(path) as f:
        h.update(f.read(FINGERPRINT_SPAN))
        if size > FINGERPRINT_SPAN:
            f.seek(max(FINGERPRINT_SPAN, size - FINGERPRINT_SPAN))
            h.update(f.read(FINGERPRINT_SPAN))
    return h.hexdigest()
