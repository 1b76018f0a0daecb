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
