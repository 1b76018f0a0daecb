from __future__ import annotations

from datetime import date
from pathlib import PurePath

import pytest

from daemon.watch.layout import is_candidate, place, safe_file_name

ATHLETE = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
DAY = date(2026, 11, 28)


@pytest.mark.parametrize(("rel", "ok"), [
    ("jane/a.mov", True), ("jane/a.MOV", True), ("jane/s/a.Mov", True),
    ("jane/.a.mov", False), ("jane/.hidden/a.mov", False), ("jane/a.mov.part", False),
    ("jane/~$a.mov", False), ("jane/a.mp4", False), ("jane/a.mov.tmp", False),
    ("jane/notes.txt", False),
])
def test_which_files_count(rel: str, ok: bool) -> None:
    assert is_candidate(PurePath(rel)) is ok


def test_uuid_folder_and_alias_resolve_to_the_athlete() -> None:
    assert place(PurePath(f"{ATHLETE}/a.mov"), {}, DAY).athlete_id == ATHLETE
    assert place(PurePath(f"{ATHLETE.upper()}/a.mov"), {}, DAY).athlete_id == ATHLETE
    # Only the canonical 8-4-4-4-12 spelling is a UUID folder; other spellings are not guessed.
    assert place(PurePath(f"{ATHLETE.replace('-', '')}/a.mov"), {}, DAY).athlete_id is None
    assert place(PurePath("jane/a.mov"), {"jane": ATHLETE}, DAY).athlete_id == ATHLETE


def test_unknown_folder_waits_with_a_reason_naming_it() -> None:
    p = place(PurePath("bob/a.mov"), {"jane": ATHLETE}, DAY, "/etc/x.toml")
    assert p.athlete_id is None and p.session_group_id is None
    assert "'bob'" in p.problem and "/etc/x.toml" in p.problem and "[athletes]" in p.problem
    assert "watch folder" in place(PurePath("a.mov"), {}, DAY).problem


def test_session_groups_are_stable_and_distinct() -> None:
    a = {"jane": ATHLETE}
    day1 = place(PurePath("jane/a.mov"), a, DAY).session_group_id
    assert day1 == place(PurePath("jane/b.mov"), a, DAY).session_group_id
    assert day1 != place(PurePath("jane/a.mov"), a, date(2026, 11, 29)).session_group_id
    s1 = place(PurePath("jane/warmup/a.mov"), a, DAY).session_group_id
    assert s1 == place(PurePath("jane/warmup/b.mov"), a, date(2027, 1, 1)).session_group_id
    assert s1 != place(PurePath("jane/match/a.mov"), a, DAY).session_group_id
    # A UUID session folder is used as it is; the same name under another athlete differs.
    group = "11111111-2222-3333-4444-555555555555"
    assert place(PurePath(f"jane/{group}/a.mov"), a, DAY).session_group_id == group
    other = place(PurePath("22222222-2222-3333-4444-555555555555/warmup/a.mov"), a, DAY)
    assert other.session_group_id != s1
    # Pinned: the same inputs give the same UUID on every machine, forever.
    assert s1 == place(PurePath("jane/warmup/x.mov"), a, DAY).session_group_id


@pytest.mark.parametrize(("name", "safe"), [
    ("swing.mov", "swing.mov"), ("a\\b.MOV", "a_b.MOV"),
    ("bad\udcff.mov", "bad_.mov"), ("   .mov", "capture.mov"),
])
def test_safe_file_names(name: str, safe: str) -> None:
    assert safe_file_name(name) == safe


def test_long_names_are_cut_to_255_keeping_the_extension() -> None:
    out = safe_file_name("x" * 300 + ".mov")
    assert len(out) == 255 and out.endswith(".mov")


def test_a_decomposed_folder_name_matches_a_composed_alias() -> None:

    athletes = {"jos\u00e9": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"}
    where = place(PurePath("jose\u0301/a.mov"), athletes, date(2026, 1, 1))
    assert where.athlete_id == "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"


def test_undecodable_bytes_become_a_valid_utf8_file_name() -> None:
    import os

    name = safe_file_name(os.fsdecode(b"caf\xe9.mov"))
    assert name.encode("utf-8") and name.endswith(".mov") and name.startswith("caf")
