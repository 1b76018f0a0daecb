"""The athlete directory's pure rules (daemon/jobs/directory.py) over generated input (Hypothesis):
the CSV parser takes back what export wrote, refuses a bad line by its number and raises
nothing but Invalid on any text; folder names match in NFC whichever form the disk uses; the
config wins over a link; the hold reason names its folder back; a new capture is for the
folder's link as the reservation is made, and with none the job waits for an athlete."""

from __future__ import annotations

import csv
import io
import unicodedata
import uuid
from datetime import date
from pathlib import PurePath

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from daemon.jobs import directory, paths
from daemon.jobs.directory import Invalid, Link
from daemon.watch import layout

# Folder names people use: letters with accents (composed or not), spaces, punctuation.
folder_chars = st.characters(blacklist_categories=("Cs", "Cc", "Cf", "Zl", "Zp", "Co", "Cn"),
                             blacklist_characters="/\\")
folders = st.text(folder_chars, min_size=1, max_size=30).filter(
    lambda s: s.strip() and not s.strip().startswith(".") and s.strip() not in (".", "..")
    and s.isprintable() and layout.as_uuid(directory.nfc(s.strip())) is None)
uuids = st.uuids().map(str)
names = st.none() | st.text(folder_chars, max_size=40)


def valid(folder: str, athlete: str, name: str | None) -> Link | None:
    try:
        return directory.link(folder, athlete, name)
    except Invalid:
        return None


@given(st.lists(st.tuples(folders, uuids, names), max_size=8))
def test_export_then_import_gives_the_same_links(rows: list[tuple[str, str, str | None]]) -> None:
    links: dict[str, Link] = {}
    for folder, athlete, name in rows:
        x = valid(folder, athlete, name)
        if x is not None:
            links.setdefault(x.folder, x)
    text = directory.to_csv(links.values())
    back = directory.parse_csv(text)
    assert [x for _, x in back] == list(links.values())
    assert all(x.folder == unicodedata.normalize("NFC", x.folder) for _, x in back)


@given(st.lists(st.tuples(folders, uuids), min_size=1, max_size=6), st.data())
def test_a_bad_uuid_is_refused_by_its_line(rows: list[tuple[str, str]], data: st.DataObject
                                           ) -> None:
    clean = {directory.nfc(f.strip()): a for f, a in rows}
    assume(all(valid(f, a, None) for f, a in clean.items()))
    lines = [[f, a] for f, a in clean.items()]
    at = data.draw(st.integers(0, len(lines) - 1))
    bad = data.draw(st.text(st.characters(whitelist_categories=("L", "N")), max_size=20)
                    .filter(lambda t: layout.as_uuid(t.strip().lower()) is None))
    lines[at][1] = bad
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([["folder", "athlete_id"], *lines])
    text = buf.getvalue()
    with pytest.raises(Invalid) as refused:
        directory.parse_csv(text)
    assert str(refused.value).startswith(f"line {at + 2}: ")
    assert "\n" not in str(refused.value)


@given(st.text(max_size=200))
def test_any_text_is_parsed_or_refused_plainly(text: str) -> None:
    try:
        rows = directory.parse_csv(text)
    except Invalid as exc:
        assert str(exc).startswith(("line ", "the file is empty"))
        return
    for _, x in rows:
        assert layout.as_uuid(x.athlete_id) == x.athlete_id


@given(folders, uuids, st.sampled_from(["NFC", "NFD"]), st.sampled_from(["NFC", "NFD"]),
       st.booleans())
def test_a_link_matches_its_folder_in_either_form(folder: str, athlete: str, typed: str,
                                                  disk: str, session: bool) -> None:
    x = valid(unicodedata.normalize(typed, folder), athlete, None)
    assume(x is not None)
    assert x is not None
    on_disk = unicodedata.normalize(disk, folder.strip())
    rel = PurePath(on_disk, *(["monday"] if session else []), "a.mov")
    athletes = directory.mapping({}, {x.folder: x.athlete_id})
    where = layout.place(rel, athletes, date(2024, 5, 1))
    assert where.problem is None and where.athlete_id == athlete


@given(folders, uuids, uuids)
def test_the_config_wins_over_a_link(folder: str, mine: str, theirs: str) -> None:
    folder = folder.strip()
    config = {unicodedata.normalize("NFD", folder): mine}
    athletes = directory.mapping(config, {directory.nfc(folder): theirs})
    where = layout.place(PurePath(folder, "a.mov"), athletes, date(2024, 5, 1))
    assert where.athlete_id == mine
    assert directory.from_config(folder, config)
    merged = directory.merged(config, [Link(directory.nfc(folder), theirs)])
    assert [(m.athlete_id, m.source) for m in merged] == [(mine, "config")]


@given(folders)
def test_the_hold_reason_names_its_folder(folder: str) -> None:
    where = layout.place(PurePath(folder, "a.mov"), {}, date(2024, 5, 1), "/etc/x.toml")
    assert directory.hold_folder(where.problem) == folder


def test_a_uuid_is_taken_in_any_case_and_anything_else_refused_in_one_line() -> None:
    u = uuid.uuid4()
    assert directory.athlete_uuid(str(u).upper()) == str(u)
    for bad in ("", "12345", f"{u}x", "jane"):
        with pytest.raises(Invalid) as refused:
            directory.athlete_uuid(bad)
        assert "is not an athlete UUID" in str(refused.value)


# ---- whom a new capture is for (issue 28): the folder's link as the reservation is made ------

DAY = date(2024, 5, 1)
sessions = st.none() | st.sampled_from(["monday", "b1f3a9e2-6c0d-4e57-8a21-3f9d0c7b5e64"])


def stored(folder: str, session: str | None, disk: str) -> str:
    """A job's rel_path as the table keeps it, its folder in the disk's normal form."""
    on_disk = unicodedata.normalize(disk, folder.strip())
    return paths.to_db(str(PurePath(on_disk, *([session] if session else []), "a.mov")))


@given(folders, uuids, uuids, sessions, st.sampled_from(["NFC", "NFD"]), st.booleans(),
       st.booleans())
def test_a_new_capture_is_for_the_link_as_it_stands_whatever_was_queued(
        folder: str, queued_for: str, now_for: str, session: str | None, disk: str,
        in_config: bool, was_queued: bool) -> None:
    rel = stored(folder, session, disk)
    link = {directory.nfc(folder.strip()): now_for}
    athletes = directory.mapping(link, {}) if in_config else directory.mapping({}, link)
    queued = directory.Athlete(queued_for, str(uuid.uuid4())) if was_queued else None
    got = directory.at_reservation(rel, athletes, DAY, "the config", queued)
    assert isinstance(got, directory.Athlete) and got.athlete_id == now_for
    assert directory.folder_link(rel, athletes) == now_for  # what status shows meanwhile
    if queued is not None and queued_for == now_for:
        assert got == queued  # the same athlete: its session group is kept
    else:  # the group follows the athlete, as the intake makes it
        where = layout.place(PurePath(paths.from_db(rel)), athletes, DAY)
        assert got.session_group_id == where.session_group_id


@given(folders, st.none() | uuids, st.dictionaries(folders, uuids, max_size=4), sessions,
       st.sampled_from(["NFC", "NFD"]))
def test_an_unlinked_folder_waits_for_an_athlete_with_the_intake_s_reason(
        folder: str, queued_for: str | None, others: dict[str, str], session: str | None,
        disk: str) -> None:
    assume(all(directory.nfc(f.strip()) != directory.nfc(folder.strip()) for f in others))
    rel = stored(folder, session, disk)
    athletes = directory.mapping({}, {directory.nfc(f.strip()): a for f, a in others.items()})
    queued = None if queued_for is None else directory.Athlete(queued_for, str(uuid.uuid4()))
    got = directory.at_reservation(rel, athletes, DAY, "/etc/x.toml", queued)
    assert isinstance(got, directory.Waiting)
    assert got.reason == layout.place(PurePath(paths.from_db(rel)), athletes, DAY,
                                      "/etc/x.toml").problem
    assert directory.nfc(directory.hold_folder(got.reason) or "") == \
        directory.nfc(folder.strip())  # counted among the folders waiting for an athlete
    assert directory.folder_link(rel, athletes) is None  # status: null


@given(uuids, st.dictionaries(folders, uuids, max_size=3), st.none() | uuids, sessions)
def test_a_folder_named_by_a_uuid_is_that_athlete_whatever_is_linked(
        folder: str, links: dict[str, str], queued_for: str | None,
        session: str | None) -> None:
    rel = stored(folder, session, "NFC")
    athletes = directory.mapping(links, {folder: str(uuid.uuid4())})
    queued = None if queued_for is None else directory.Athlete(queued_for, str(uuid.uuid4()))
    got = directory.at_reservation(rel, athletes, DAY, "the config", queued)
    assert isinstance(got, directory.Athlete) and got.athlete_id == folder
    assert directory.folder_link(rel, athletes) == folder

def test_the_all_zero_uuid_and_spaced_csv_folders_are_refused() -> None:
    """Issue 30: the all-zero UUID (an example's placeholder) names nobody, as a link or as a
    folder; a CSV folder name with spaces around it is refused by its line, not trimmed."""
    nil = "00000000-0000-0000-0000-000000000000"
    with pytest.raises(Invalid, match="all-zero UUID"):
        directory.athlete_uuid(nil)
    assert layout.place(PurePath(nil, "a.mov"), {}, date(2024, 5, 1), "/x.toml").athlete_id \
        is None
    u = str(uuid.uuid4())
    for folder in (" Tom", "Tom ", "\u00a0Tom"):
        with pytest.raises(Invalid) as refused:
            directory.parse_csv(f"folder,athlete_id\nAna,{u}\n{folder},{u}\n")
        assert str(refused.value).startswith("line 3: ") and repr(folder) in str(refused.value)
