"""Hand-made QuickTime atoms for the reader's tests: the few the daemon reads, laid out as the
spec says, so one field at a time can be broken (support.make_movie makes whole real movies)."""

from __future__ import annotations

import struct

IDENTITY = (0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
ROTATE_90 = (0, 0x10000, 0, -0x10000, 0, 0, 0, 0, 0x40000000)


def atom(kind: bytes, *parts: bytes) -> bytes:
    body = b"".join(parts)
    return struct.pack(">I4s", 8 + len(body), kind) + body


def atom64(kind: bytes, *parts: bytes) -> bytes:
    """The same with a 64-bit size (size field 1, then 8 bytes)."""
    body = b"".join(parts)
    return struct.pack(">I4sQ", 1, kind, 16 + len(body)) + body


def mvhd(secs: int = 0, version: int = 0) -> bytes:
    if version == 1:
        times = struct.pack(">QQIQ", secs, secs, 600, 0)
    else:
        times = struct.pack(">IIII", secs & 0xFFFFFFFF, secs & 0xFFFFFFFF, 600, 0)
    return atom(b"mvhd", bytes([version, 0, 0, 0]), times, bytes(80))


def tkhd(width: int, height: int, matrix: tuple[int, ...] = IDENTITY, version: int = 0) -> bytes:
    times = bytes(32 if version == 1 else 20)  # created, modified, track id, reserved, duration
    return atom(b"tkhd", bytes([version, 0, 0, 7]), times, bytes(16),
                struct.pack(">9i", *matrix), struct.pack(">II", width << 16, height << 16))


def ftyp() -> bytes:
    return atom(b"ftyp", b"qt  ", bytes(4), b"qt  ")


def movie(*moov: bytes, mdat: bytes = bytes(32)) -> bytes:
    """ftyp, mdat, then a moov holding `moov` (a camera writes the index last)."""
    return ftyp() + atom(b"mdat", mdat) + atom(b"moov", *moov)


def video_trak(width: int = 320, height: int = 240) -> bytes:
    return atom(b"trak", tkhd(width, height), atom(b"mdia", atom(b"mdhd", bytes(24))))


def full(kind: bytes, fmt: str, *values: int) -> bytes:
    """A full box (version 0, no flags) of big-endian fields."""
    return atom(kind, bytes(4), struct.pack(">" + fmt, *values))


def sample_tables(offsets: list[int], runs: list[tuple[int, int]], sizes: list[int] | int,
                  wide: bool = False) -> bytes:
    """An `stbl` naming samples: chunk offsets (stco, co64 if `wide`), sample-to-chunk runs
    (first chunk from 1, samples per chunk) and sizes (a list, or one size for all)."""
    chunks = full(b"co64" if wide else b"stco", f"I{len(offsets)}{'Q' if wide else 'I'}",
                  len(offsets), *offsets)
    stsc = full(b"stsc", f"I{3 * len(runs)}I", len(runs),
                *[v for first, per in runs for v in (first, per, 1)])
    if isinstance(sizes, int):
        top = len(offsets) + 1
        count = sum(per * max(0, min(_next(runs, i, len(offsets)), top) - min(first, top))
                    for i, (first, per) in enumerate(runs))
        stsz = full(b"stsz", "II", sizes, count)
    else:
        stsz = full(b"stsz", f"II{len(sizes)}I", 0, len(sizes), *sizes)
    return atom(b"stbl", stsc, stsz, chunks)


def _next(runs: list[tuple[int, int]], i: int, chunks: int) -> int:
    return runs[i + 1][0] if i + 1 < len(runs) else chunks + 1


def track_with_samples(stbl: bytes, width: int = 320, height: int = 240) -> bytes:
    return atom(b"trak", tkhd(width, height),
                atom(b"mdia", atom(b"mdhd", bytes(24)), atom(b"minf", stbl)))


def top_atoms(data: bytes) -> list[tuple[bytes, int, int]]:
    """(kind, start, end) of each top-level atom of a well-formed file."""
    out, pos = [], 0
    while pos < len(data):
        size, kind = struct.unpack_from(">I4s", data, pos)
        if size == 1:
            size = struct.unpack_from(">Q", data, pos + 8)[0]
        elif size == 0:
            size = len(data) - pos
        out.append((kind, pos, pos + size))
        pos += size
    return out


def index_first(data: bytes) -> tuple[bytes, bytes]:
    """A real muxed movie (ftyp, mdat, moov) as a recorder that writes its index first lays
    it out: ftyp + moov + an `mdat` header of size 0 ("to the end of the file"), then the
    samples. Returns (header, samples): the file is header + samples, the chunk offsets
    moved to where the samples now are."""
    atoms = {kind: (start, end) for kind, start, end in top_atoms(data)}
    (ftyp_end, mdat, moov) = atoms[b"ftyp"][1], atoms[b"mdat"], atoms[b"moov"]
    old_body = mdat[0] + 8
    assert struct.unpack_from(">I", data, mdat[0])[0] != 1, "a 32-bit mdat header"
    new_body = ftyp_end + (moov[1] - moov[0]) + 8
    index = bytearray(data[moov[0]:moov[1]])
    _shift_chunks(index, 8, len(index), new_body - old_body)
    header = data[:ftyp_end] + bytes(index) + struct.pack(">I4s", 0, b"mdat")
    return header, data[old_body:mdat[1]]


def _shift_chunks(buf: bytearray, start: int, end: int, delta: int) -> None:
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", buf, pos)
        if kind in (b"trak", b"mdia", b"minf", b"stbl"):
            _shift_chunks(buf, pos + 8, pos + size, delta)
        elif kind in (b"stco", b"co64"):
            fmt = ">I" if kind == b"stco" else ">Q"
            width = struct.calcsize(fmt)
            count = struct.unpack_from(">I", buf, pos + 12)[0]
            for at in range(pos + 16, pos + 16 + count * width, width):
                struct.pack_into(fmt, buf, at, struct.unpack_from(fmt, buf, at)[0] + delta)
        pos += size
