"""The QuickTime reader fuzzed (issue 19): generated atom trees (nested, 64-bit sizes, size 0
"to the end", wrong sizes, truncated, huge bodies that are never there) and mutated real movies
never raise anything but NotAMovie, never get past the reader's own catch-all (each case is
handled by name), give facts classify can use, and never read more than movie.MAX_READ.
A movie is complete only when every sample its tables name is inside the file (issue 28): real
movies written index-first and cut anywhere, and generated sample tables against a per-sample
model of them.

`make test` runs a bounded number of examples (the `ci` profile), `make fuzz` many more."""

from __future__ import annotations

import struct
from collections.abc import Callable
from datetime import datetime

import pytest
import qt_atoms as qt
from hypothesis import example, given
from hypothesis import strategies as st
from support import make_movie

from daemon.watch import movie
from daemon.watch.movie import MovieInfo, NotAMovie


class VirtualFile:
    """A read-only file of `size` bytes: `data` first, then what `fill(offset, n)` gives (zeros:
    a hole), so terabyte atoms cost nothing. Counts the bytes it hands out."""

    def __init__(self, data: bytes, size: int | None = None,
                 fill: Callable[[int, int], bytes] = lambda offset, n: bytes(n)):
        self.data, self.size, self.fill = data, len(data) if size is None else size, fill
        self.pos = self.read_bytes = 0

    def seek(self, pos: int) -> int:
        self.pos = pos
        return pos

    def read(self, n: int = -1) -> bytes:
        n = self.size - self.pos if n < 0 else min(n, max(0, self.size - self.pos))
        assert n <= movie.MAX_MOOV, "one read larger than the cap"
        out = self.data[self.pos:self.pos + n]
        if len(out) < n:
            out += self.fill(self.pos + len(out), n - len(out))
        self.pos += n
        self.read_bytes += n
        return out


def check(f: VirtualFile) -> MovieInfo | None:
    """The properties, for any file: the result or None for NotAMovie."""
    try:
        info = movie.read(f, f.size)
    except NotAMovie as exc:
        assert str(exc), "a NotAMovie without a reason"
        assert exc.__cause__ is None, f"only the reader's catch-all stopped {exc.__cause__!r}"
        info = None
    else:
        assert info.orientation in (None, "portrait", "landscape")
        if info.creation_time is not None:  # what classify does with it must work
            datetime.fromtimestamp(info.creation_time.timestamp()).date()
    assert f.read_bytes <= movie.MAX_READ
    return info


# ---- generated atom trees ----------------------------------------------------------------------

CONTAINERS = [b"moov", b"trak", b"mdia", b"minf", b"stbl", b"udta", b"meta", b"ilst", b"edts"]
TOP = [b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip", b"uuid", b"junk", b"abcd"]
# How a node's header is written: as it should be, 64-bit, 0 ("to the end"), or lying.
HEADERS = st.sampled_from(["plain", "plain", "plain", "wide", "to_end", "lie"])
SIZE_LIES = st.sampled_from([0, 1, 2, 7, 8, 15, 16, 0xFFFFFFFF, 2**32, 2**63, 2**64 - 1])

times = st.one_of(st.just(0), st.integers(0, 2**32 - 1), st.integers(0, 2**64 - 1))
matrices = st.sampled_from([qt.IDENTITY, qt.ROTATE_90, (0,) * 9]) | st.tuples(
    *[st.integers(-2**31, 2**31 - 1)] * 9)
dates = st.sampled_from(["2026-05-13T14:30:00+0200", "0001-01-01T00:00:00+0100",
                         "9999-12-31T23:59:59-0500", "not a date", "", "2026-13-45"])


@st.composite
def apple_meta(draw: st.DrawFn) -> bytes:
    key = draw(st.sampled_from([b"com.apple.quicktime.creationdate", b"other"]))
    count = draw(st.sampled_from([0, 1, 2, 2**32 - 1]))
    keys = qt.atom(b"keys", bytes(4), count.to_bytes(4, "big"),
                   draw(st.sampled_from([0, 7, 8, 8 + len(key), 2**32 - 1])).to_bytes(4, "big"),
                   b"mdta", key)
    index = draw(st.sampled_from([0, 1, 2, 2**32 - 1]))
    data = qt.atom(b"data", bytes(8), draw(dates).encode())
    return qt.atom(b"meta", draw(st.sampled_from([b"", bytes(4)])), keys,
                   qt.atom(b"ilst", qt.atom(index.to_bytes(4, "big"), data)))


def leaves() -> st.SearchStrategy[bytes]:
    """Whole atoms: well-formed ones of the kinds the reader reads, cut short or not, and
    random bodies under the reader's names."""
    good = st.one_of(
        st.builds(qt.mvhd, times, st.sampled_from([0, 1, 2])),
        st.builds(qt.tkhd, st.integers(0, 2**16 - 1), st.integers(0, 2**16 - 1), matrices,
                  st.sampled_from([0, 1, 2])),
        apple_meta(),
    )
    cut = st.tuples(good, st.integers(0, 120)).map(
        lambda t: struct.pack(">I", max(8, len(t[0]) - t[1])) + t[0][4:len(t[0]) - t[1]])
    raw = st.builds(qt.atom, st.sampled_from([b"mvhd", b"tkhd", b"keys", b"data", b"free",
                                              b"mdhd", b"hdlr", b"stco", b"co64", b"stsz",
                                              b"stsc"]), st.binary(max_size=40))
    return st.one_of(good, cut, raw, tables())


COUNTS = st.sampled_from([0, 1, 2, 3, 2**31, 2**32 - 1])
FIELDS = st.sampled_from([0, 1, 2, 7, 2**31, 2**32 - 1]) | st.integers(0, 200)


@st.composite
def tables(draw: st.DrawFn) -> bytes:
    """A sample table with counts that may lie and fields that may be anything."""
    kind = draw(st.sampled_from([b"stco", b"co64", b"stsz", b"stsc"]))
    fields = draw(st.lists(FIELDS, max_size=9))
    head = [draw(FIELDS), draw(COUNTS)] if kind == b"stsz" else [draw(COUNTS)]
    wide = "Q" if kind == b"co64" else "I"
    return qt.full(kind, f"{len(head)}I{len(fields)}{wide}", *head, *fields)


@st.composite
def rewrite(draw: st.DrawFn, whole: bytes) -> bytes:
    """Write an atom's header one of the ways a file may have it."""
    size, kind, body = len(whole), whole[4:8], whole[8:]
    how = draw(HEADERS)
    if how == "wide":
        return struct.pack(">I4sQ", 1, kind, size + 8) + body
    if how == "to_end":
        return struct.pack(">I4s", 0, kind) + body
    if how == "lie":
        lie = draw(SIZE_LIES)
        if lie >= 2**32:
            return struct.pack(">I4sQ", 1, kind, lie) + body
        return struct.pack(">I4s", lie, kind) + body
    return whole


def trees() -> st.SearchStrategy[bytes]:
    def nest(children: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
        return st.builds(lambda kind, parts: qt.atom(kind, *parts), st.sampled_from(CONTAINERS),
                         st.lists(children, max_size=4))
    return st.recursive(leaves(), nest, max_leaves=12).flatmap(rewrite)


@st.composite
def files(draw: st.DrawFn) -> VirtualFile:
    moov = draw(st.builds(lambda parts: qt.atom(b"moov", *parts), st.lists(trees(), max_size=5))
                .flatmap(rewrite))
    others = draw(st.lists(st.builds(qt.atom, st.sampled_from(TOP), st.binary(max_size=24))
                           .flatmap(rewrite), max_size=3))
    parts = [qt.ftyp(), *others]
    parts.insert(draw(st.integers(0, len(parts))), moov)
    data = b"".join(parts)
    if draw(st.booleans()):
        data = data[:draw(st.integers(0, len(data)))]  # a copy still being written
    size = len(data)
    if draw(st.booleans()):
        # A last atom whose body is not there (mdat of a long capture, or a moov past the
        # cap): the virtual file's size says it is, reads of it give zeros.
        body = draw(st.sampled_from([movie.MAX_MOOV + 1, 2**32, 2**40, 2**62]))
        data += struct.pack(">I4sQ", 1, draw(st.sampled_from([b"mdat", b"moov", b"free"])),
                            16 + body)
        size = len(data) + body - draw(st.sampled_from([0, 0, 1]))
    return VirtualFile(data, size)


@given(files())
@example(VirtualFile(qt.movie(qt.atom(b"mvhd"), qt.video_trak())))  # issue 19 item 5
@example(VirtualFile(qt.movie(qt.mvhd(), qt.atom(b"trak", qt.atom(b"tkhd")))))
@example(VirtualFile(qt.movie(qt.mvhd(2**64 - 1, version=1), qt.video_trak())))
def test_generated_atom_trees(f: VirtualFile) -> None:
    check(f)


def test_well_formed_trees_are_read() -> None:
    """The generators can make readable movies (else the fuzz only tests the refusals)."""
    info = check(VirtualFile(qt.movie(qt.mvhd(3_800_000_000), qt.video_trak(240, 320))))
    assert info is not None and info.orientation == "portrait" and info.creation_time


def test_huge_moov_and_many_atoms_are_refused_without_reading_them() -> None:
    huge = qt.ftyp() + struct.pack(">I4sQ", 1, b"moov", 16 + 2**40)
    f = VirtualFile(huge, len(huge) + 2**40)
    assert check(f) is None and f.read_bytes < 100
    # A terabyte of 8-byte `free` atoms: refused after MAX_TOP_ATOMS headers, not walked.
    pattern = struct.pack(">I4s", 8, b"free")
    f = VirtualFile(b"", 2**40, fill=lambda offset, n: (pattern * (n // 8 + 2))[
        offset % 8:offset % 8 + n])
    with pytest.raises(NotAMovie, match="top-level atoms"):
        movie.read(f, f.size)
    assert f.read_bytes <= movie.HEADER_READ * movie.MAX_TOP_ATOMS


# ---- mutated real movies ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, list[int]]:
    """One small real QuickTime (FFmpeg's muxer via PyAV) and where its atom headers are."""
    path = make_movie(tmp_path_factory.mktemp("fuzz") / "real.mov", 2, 64, 48, rotate=90,
                      metadata={"creation_time": "2026-05-13T12:00:00.000000Z"})
    data = path.read_bytes()
    assert movie.read(VirtualFile(data), len(data)).orientation == "portrait"
    heads: list[int] = []

    def walk(start: int, end: int) -> None:
        for kind, body, stop in movie._atoms(data, start, end):
            heads.append(body - 8)
            if kind in (b"moov", b"trak", b"mdia", b"minf", b"stbl", b"udta", b"edts"):
                walk(body, stop)
    walk(0, len(data))
    return data, heads


INTERESTING = [0, 1, 7, 8, 16, 0x7FFFFFFF, 0xFFFFFFFF]


@st.composite
def mutations(draw: st.DrawFn, data: bytes, heads: list[int]) -> bytes:
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        if not out:
            break
        at = draw(st.one_of(st.integers(0, len(out) - 1), st.sampled_from(heads),
                            st.sampled_from(heads).map(lambda h: h + 8)))
        at = min(at, len(out) - 1)
        op = draw(st.sampled_from(["flip", "size", "cut", "insert", "delete"]))
        if op == "flip":
            out[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "size":  # a size or version field set to a value that means something
            out[at:at + 4] = draw(st.sampled_from(INTERESTING)).to_bytes(4, "big")
        elif op == "cut":
            del out[at:]
        elif op == "insert":
            out[at:at] = draw(st.binary(min_size=1, max_size=16))
        else:
            del out[at:at + draw(st.integers(1, 64))]
    return bytes(out)


@given(data=st.data())
def test_mutated_real_movies(real: tuple[bytes, list[int]], data: st.DataObject) -> None:
    check(VirtualFile(data.draw(mutations(*real))))


# ---- completeness: every sample the index names is inside the file (issue 28 item 2) -----------

class IndexFirst(tuple[bytes, bytes]):
    """(header, samples), shown short in a failing example."""

    def __repr__(self) -> str:
        return f"IndexFirst({len(self[0])} + {len(self[1])} bytes)"


@pytest.fixture(scope="module")
def index_first(real: tuple[bytes, list[int]]) -> IndexFirst:
    """The real movie as a recorder that writes its index first lays it out (header, samples)."""
    return IndexFirst(qt.index_first(real[0]))


@given(data=st.data())
def test_an_index_first_movie_cut_anywhere(index_first: tuple[bytes, bytes],
                                           data: st.DataObject) -> None:
    """Each close of the recorder: complete only with the last sample in; before that the
    reason says the recording is incomplete (instant pickup waits, settle fails it)."""
    header, samples = index_first
    cut = data.draw(st.integers(0, len(samples)) | st.just(len(samples)) | st.just(0))
    f = VirtualFile(header + samples[:cut])
    try:
        info = movie.read(f, f.size)
    except NotAMovie as exc:
        assert cut < len(samples) and str(exc).startswith("recording is incomplete"), exc
    else:
        assert cut == len(samples) and info.orientation == "portrait"
    assert f.read_bytes <= len(header) + 2 * movie.HEADER_READ


@given(data=st.data())
def test_mutated_index_first_movies(index_first: tuple[bytes, bytes],
                                    data: st.DataObject) -> None:
    header, samples = index_first
    whole = header + samples
    heads = [start for _, start, _ in qt.top_atoms(whole)]
    check(VirtualFile(data.draw(mutations(whole, heads + list(range(len(qt.ftyp()) + 8,
                                                                     len(header), 4))))))


class Damaged(Exception):
    pass


def model_end(offsets: list[int], runs: list[tuple[int, int]], sizes: list[int] | int) -> int:
    """The spec one sample at a time: chunk n holds the samples of the run it falls in, in
    order; the movie needs up to the end of its furthest chunk. QuickTime sound's uniform size
    1 is an audio frame, not a byte: such a chunk counts as its first byte."""
    per_chunk = [0] * len(offsets)  # chunks before the first run hold nothing
    for i, (first, per) in enumerate(runs):
        upto = runs[i + 1][0] if i + 1 < len(runs) else len(offsets) + 1
        if first < 1 or upto < first:
            raise Damaged
        for chunk in range(first, min(upto, len(offsets) + 1)):
            per_chunk[chunk - 1] = per
    end, sample = 0, 0
    for offset, per in zip(offsets, per_chunk, strict=True):
        if not per:
            continue
        if isinstance(sizes, int):
            end = max(end, offset + (per * sizes if sizes > 1 else 1))
        else:
            if sample + per > len(sizes):
                raise Damaged
            end = max(end, offset + sum(sizes[sample:sample + per]))
        sample += per
    return end


@st.composite
def sample_movies(draw: st.DrawFn) -> tuple[VirtualFile, int | None]:
    """ftyp + moov naming samples at generated places + an mdat to the end of a file of a
    generated size (a hole: no sample is there to read). With the model's end (None: damaged)."""
    offsets = draw(st.lists(st.integers(0, 2**20), max_size=8))
    wide = draw(st.booleans())
    if wide:
        offsets = [o + draw(st.sampled_from([0, 2**32, 2**40])) for o in offsets]
    firsts = draw(st.lists(st.integers(0, len(offsets) + 2), max_size=4))
    if draw(st.booleans()):
        firsts = sorted(set(firsts))  # mostly well-formed runs
    runs = [(first, draw(st.integers(0, 5))) for first in firsts]
    sizes: list[int] | int = draw(st.integers(0, 2**16) | st.lists(
        st.integers(0, 2**16), max_size=30))
    if sizes == 0:
        sizes = []  # an stsz size of 0 means "listed"
    stbl = qt.sample_tables(offsets, runs, sizes, wide=wide)
    try:
        needs: int | None = model_end(offsets, runs, sizes) if offsets else 0
    except Damaged:
        needs = None
    head = qt.ftyp() + qt.atom(b"moov", qt.mvhd(), qt.track_with_samples(stbl)) + \
        struct.pack(">I4s", 0, b"mdat")
    size = draw(st.integers(len(head), len(head) + 2**21) | st.sampled_from(
        [len(head), (needs or 0) - 1, needs or 0, 2**41]).map(lambda n: max(n, len(head))))
    return VirtualFile(head, size), needs


@given(sample_movies())
def test_complete_only_when_every_sample_is_inside(made: tuple[VirtualFile, int | None]) -> None:
    f, needs = made
    info = check(f)
    if needs is None:  # tables that contradict themselves: not a movie, in words
        with pytest.raises(NotAMovie, match="sample tables are damaged"):
            movie.read(VirtualFile(f.data, f.size), f.size)
    elif needs > f.size:
        assert info is None
        with pytest.raises(NotAMovie, match=f"lists runs to {needs:,} bytes"):
            movie.read(VirtualFile(f.data, f.size), f.size)
    else:
        assert info is not None
    assert f.read_bytes <= len(f.data) + movie.HEADER_READ
