"""Path encoding in the job table (jobs/paths.py), searched with Hypothesis: any name the file
system can give (any bytes but NUL, Python's surrogate escapes, NFC or NFD, one that starts
with the b64: prefix) is stored as valid UTF-8 text and read back as the same path."""

from __future__ import annotations

import os
import unicodedata

from hypothesis import example, given
from hypothesis import strategies as st

from daemon.jobs import paths

# What POSIX allows in a path: any byte but NUL.
raw_paths = st.binary(max_size=60).map(lambda b: b.replace(b"\0", b"")) | st.builds(
    lambda parts: b"/" + b"/".join(parts),
    st.lists(st.binary(min_size=1, max_size=12).map(lambda b: b.replace(b"\0", b"x")),
             max_size=4))
# Text people type, with accents both ways, and sometimes the prefix itself.
names = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\0"),
                max_size=40)
texts = st.one_of(names, names.map(lambda s: paths.PREFIX + s),
                  names.map(lambda s: unicodedata.normalize("NFD", s)))
# Any str os.fsencode can turn into a name: text plus surrogate-escaped bytes, in any order.
escaped = st.lists(st.one_of(names, st.integers(0x80, 0xFF).map(lambda b: chr(0xDC00 + b))),
                   max_size=8).map("".join)


def storable(stored: str) -> None:
    stored.encode("utf-8")  # any database text column can hold it ...
    assert "\0" not in stored  # ... PostgreSQL's too


@given(raw_paths)
def test_any_bytes_round_trip(raw: bytes) -> None:
    path = os.fsdecode(raw)
    stored = paths.to_db(path)
    storable(stored)
    assert paths.from_db(stored) == path
    assert os.fsencode(paths.from_db(stored)) == raw


@given(texts)
def test_text_paths_are_stored_as_they_are_unless_they_look_encoded(path: str) -> None:
    stored = paths.to_db(path)
    storable(stored)
    assert paths.from_db(stored) == path
    assert (stored == path) is (not path.startswith(paths.PREFIX))
    assert paths.readable(path) == path


@given(escaped)
def test_any_encodable_str_names_the_same_file_after_a_round_trip(path: str) -> None:
    stored = paths.to_db(path)
    storable(stored)
    assert os.fsencode(paths.from_db(stored)) == os.fsencode(path)


@given(names)
@example("b64:")  # found by the fuzz profile: a test slip, the prefix is stored encoded
def test_nfc_and_nfd_stay_two_paths(name: str) -> None:
    """macOS writes NFD, people type NFC: both are kept as written, never merged."""
    nfc, nfd = unicodedata.normalize("NFC", name), unicodedata.normalize("NFD", name)
    assert paths.from_db(paths.to_db(nfc)) == nfc and paths.from_db(paths.to_db(nfd)) == nfd
    assert (paths.to_db(nfc) == paths.to_db(nfd)) is (nfc == nfd)


@given(raw_paths, raw_paths)
def test_two_paths_are_never_stored_alike(a: bytes, b: bytes) -> None:
    da, db = os.fsdecode(a), os.fsdecode(b)
    assert (paths.to_db(da) == paths.to_db(db)) is (a == b)


@given(raw_paths)
def test_readable_is_valid_text_that_keeps_what_decodes(raw: bytes) -> None:
    path = os.fsdecode(raw)
    shown = paths.readable(path)
    shown.encode("utf-8")
    assert shown == raw.decode("utf-8", "replace")
