"""The folder convention (layout.py), searched with Hypothesis: which files count, which athlete
and session group a place gives (stable UUIDv5s, a UUID folder used as it is), and the file
name sent to the API."""

from __future__ import annotations

import os
import unicodedata
import uuid
from datetime import date
from pathlib import PurePath

from hypothesis import assume, example, given
from hypothesis import strategies as st

from daemon.watch.layout import (
    MAX_FILE_NAME,
    NAMESPACE,
    TEMP_SUFFIXES,
    as_uuid,
    is_candidate,
    place,
    safe_file_name,
    shown,
)

# One path component as the file system hands it over: any bytes but NUL and "/", decoded.
components = st.binary(min_size=1, max_size=20).map(
    lambda b: os.fsdecode(b.replace(b"\0", b"_").replace(b"/", b"_"))).filter(
    lambda s: s not in (".", ".."))
words = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="/\0"),
                min_size=1, max_size=20).filter(lambda s: s not in (".", ".."))
parts = st.one_of(components, words)
visible = parts.filter(lambda s: not s.startswith("."))
uuids = st.uuids().map(str)
uuid_spellings = uuids.flatmap(lambda u: st.sampled_from([u, u.upper()]))
days = st.dates(date(2000, 1, 1), date(2100, 1, 1))
aliases = st.dictionaries(words.filter(lambda s: not as_uuid(s)), uuids, max_size=4)


@given(st.lists(visible, min_size=1, max_size=4), visible)
def test_a_visible_mov_is_a_candidate_unless_named_like_an_office_temp(folders: list[str],
                                                                       stem: str) -> None:
    rel = PurePath(*folders, stem + ".mov")
    assume(rel.parts == (*folders, stem + ".mov"))  # no "/" or empty parts folded away
    assert is_candidate(rel) is (not rel.name.startswith("~$"))
    assert is_candidate(PurePath(*folders, stem + ".MoV")) is is_candidate(rel)


@given(st.lists(visible, min_size=1, max_size=4), visible, st.integers(0, 4),
       st.sampled_from(["hidden", "temp", "other"]), st.sampled_from(TEMP_SUFFIXES))
def test_hidden_and_temp_files_are_never_candidates(folders: list[str], stem: str, at: int,
                                                    how: str, suffix: str) -> None:
    names = [*folders, stem + ".mov"]
    if how == "hidden":  # a hidden file, or one in a hidden folder at any depth
        at = min(at, len(names) - 1)
        names[at] = "." + names[at]
    elif how == "temp":  # a download or editor still writing it
        names[-1] += suffix
    else:
        names[-1] = stem + ".mp4"
    assert not is_candidate(PurePath(*names))


@given(uuid_spellings, aliases, st.lists(parts, min_size=0, max_size=3), days)
def test_a_uuid_folder_is_the_athlete_as_it_is(folder: str, athletes: dict[str, str],
                                               rest: list[str], day: date) -> None:
    # even if an alias of the same spelling points elsewhere
    where = place(PurePath(folder, *rest, "a.mov"), {**athletes, folder: str(uuid.uuid4())}, day)
    assert where.problem is None and where.athlete_id == folder.lower()


@given(words, uuids, aliases, days, days, st.lists(parts, max_size=2), parts, parts)
# A Latin-1 session folder: uuid.uuid5 raised UnicodeEncodeError on its surrogate escape.
@example("jane", "e3e70682-c209-4cac-629f-6fbed82c07cd", {}, date(2000, 1, 1),
         date(2000, 1, 1), [], os.fsdecode(b"S\xe9ance"), "x")
def test_groups_are_stable_uuid5s_of_athlete_and_day_or_session(
        alias: str, athlete: str, others: dict[str, str], day: date, other_day: date,
        deeper: list[str], name: str, other_name: str) -> None:
    assume(not as_uuid(alias))
    athletes = {**others, alias: athlete}
    direct = place(PurePath(alias, "a.mov"), athletes, day)
    assert direct == place(PurePath(alias, "b.mov"), dict(athletes), day)  # same inputs, same id
    assert direct.athlete_id == athlete and direct.problem is None
    assert direct.session_group_id == str(uuid.uuid5(NAMESPACE, f"{athlete}/day/{day}"))
    assert (place(PurePath(alias, "a.mov"), athletes, other_day) == direct) is (day == other_day)
    # a session folder: the day no longer matters, nor how deep the file lies under it
    session = place(PurePath(alias, name, *deeper, "x.mov"), athletes, day)
    assert session == place(PurePath(alias, name, "y.mov"), athletes, other_day)
    group = uuid.UUID(session.session_group_id or "")
    if as_uuid(name):
        assert str(group) == as_uuid(name)  # a UUID session folder is used as it is
    else:
        assert group.version == 5
        if shown(name) == name:  # pinned: the ids issued so far never change
            assert str(group) == str(uuid.uuid5(NAMESPACE, f"{athlete}/session/{name}"))
    other = place(PurePath(alias, other_name, "x.mov"), athletes, day)
    same_uuid = as_uuid(name) is not None and as_uuid(name) == as_uuid(other_name)
    assert (other == session) is (name == other_name or same_uuid)


@given(words, uuids, days)
def test_a_decomposed_folder_finds_its_composed_alias_and_back(alias: str, athlete: str,
                                                               day: date) -> None:
    assume(not as_uuid(alias))
    for stored, folder in [("NFC", "NFD"), ("NFD", "NFC")]:
        athletes = {unicodedata.normalize(stored, alias): athlete}
        where = place(PurePath(unicodedata.normalize(folder, alias), "a.mov"), athletes, day)
        assert where.athlete_id == athlete and where.problem is None


@given(parts, aliases, days, st.lists(parts, max_size=2))
# A Latin-1 folder name: its surrogate escape went into the reason the job table stores.
@example(os.fsdecode(b"Jos\xe9"), {}, date(2026, 1, 1), [])
def test_an_unknown_folder_waits_with_a_reason_naming_it(folder: str, athletes: dict[str, str],
                                                         day: date, rest: list[str]) -> None:
    assume(not as_uuid(folder) and unicodedata.normalize("NFC", folder) not in
           {unicodedata.normalize("NFC", a) for a in athletes})
    where = place(PurePath(folder, *rest, "a.mov"), athletes, day, "/etc/c.toml")
    assert where.athlete_id is None and where.session_group_id is None
    assert where.problem and f"'{shown(folder)}'" in where.problem
    assert "/etc/c.toml" in where.problem
    where.problem.encode("utf-8")  # the job table stores it as text


@given(parts, aliases, days)
@example(os.fsdecode(b"caf\xe9.mov"), {}, date(2026, 1, 1))
def test_a_file_directly_in_the_watch_folder_waits_with_a_storable_reason(
        name: str, athletes: dict[str, str], day: date) -> None:
    where = place(PurePath(name), athletes, day)
    assert where.athlete_id is None and where.problem and "directly in the watch folder" in \
        where.problem
    where.problem.encode("utf-8")


@given(st.one_of(parts, st.text(max_size=300))
       .flatmap(lambda s: st.sampled_from([s, s + ".mov", s + ".MOV"])))
@example("/.mov")  # found by the fuzz profile: test slips, "/" and U+FFFD are replaced
@example("\ufffd.mov")
def test_the_file_name_sent_is_always_one_the_api_takes(name: str) -> None:
    safe = safe_file_name(name)
    safe.encode("utf-8")
    assert "/" not in safe and "\\" not in safe
    assert safe.lower().endswith(".mov") and safe[:-4].strip()
    assert len(safe) <= MAX_FILE_NAME
    stem = name[:-4]
    if name.lower().endswith(".mov") and len(name) <= MAX_FILE_NAME and stem.strip() == stem \
            and stem and name.isprintable() and not {"/", "\\", "\ufffd"} & set(name):
        # (a real U+FFFD is sent as "_", like the undecodable bytes it usually stands for)
        assert safe == name  # a good name is sent as it is
