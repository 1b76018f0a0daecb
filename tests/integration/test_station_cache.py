"""Issue 33, item 2: the movie reader, the pickup's look and the fingerprint read a few atom
headers, the index and two MiB, never the media, and the kernel must not read ahead into the
media for them. A fragmented movie (an atom every 256 KiB, as a capture tool writing
fragments makes) on a real disk-backed file, out of the page cache, then read; what it left
cached is measured."""

from __future__ import annotations

import os
import struct
from pathlib import Path

from support import cached_bytes, make_movie

from daemon.watch import movie, pickup

FRAGMENT = 256 * 1024


def fragmented_movie(path: Path, fragments: int) -> Path:
    make_movie(path, frames=2)
    body = os.urandom(FRAGMENT - 8)
    with open(path, "ab") as f:
        for _ in range(fragments):
            f.write(struct.pack(">I4s", FRAGMENT, b"free") + body)
        f.flush()
        os.fsync(f.fileno())
        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
    return path


def test_reading_a_movie_pulls_in_no_more_than_its_headers(tmp_path: Path) -> None:
    path = fragmented_movie(tmp_path / "frag.mov", 160)  # 40 MiB
    size = path.stat().st_size
    assert cached_bytes(path) < 0.01 * size
    movie.inspect(path)
    st = path.stat()
    pickup.look(str(path), (st.st_size, st.st_mtime_ns), events=True)
    movie.fingerprint(path, size)
    # 161 headers of a page or two each (3 %), the index, the fingerprint's first and last
    # MiB (5 %); read-ahead after the fingerprint's reads took it to 20 %
    assert cached_bytes(path) <= 0.12 * size
