"""Paths in the job table are lossless, whatever bytes the file system gave us."""

from __future__ import annotations

import os

from daemon.jobs import paths


def test_plain_paths_are_stored_as_they_are() -> None:
    for p in ("/w/jane/swing.mov", "/w/jos\u00e9/caf\u00e9.mov", "/w/b64:odd/a.mov"):
        assert paths.from_db(paths.to_db(p)) == p
    assert paths.to_db("/w/jane/swing.mov") == "/w/jane/swing.mov"


def test_undecodable_names_round_trip_and_read_well() -> None:
    latin1 = os.fsdecode(b"/w/jane/caf\xe9.mov")
    stored = paths.to_db(latin1)
    stored.encode("utf-8")  # any database can hold it
    assert paths.from_db(stored) == latin1
    assert os.fsencode(paths.from_db(stored)) == b"/w/jane/caf\xe9.mov"
    assert paths.readable(latin1) == "/w/jane/caf\ufffd.mov"
