"""`setup`'s answers: FOLDER=UUID parsing and the rendered config, for any input."""

from __future__ import annotations

import tomllib
import unicodedata
import uuid
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemon import config as config_mod
from daemon.setup import answers as ans

# Folder names as people type them: any text, including "=", spaces, accents, quotes.
folders = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=30)


@given(folders, st.uuids())
def test_folder_uuid_round_trips_or_is_refused_with_a_reason(folder: str, u: uuid.UUID) -> None:
    text = f"{folder}={str(u).upper() if u.int % 2 else u}"
    try:
        parsed = ans.parse_athlete(text)
    except ValueError as exc:
        assert repr(text) in str(exc)
        assert ans.folder_problem(unicodedata.normalize("NFC", folder.strip())) is not None
    else:
        assert parsed == (unicodedata.normalize("NFC", folder.strip()), str(u))


@given(st.text(max_size=60))
def test_any_text_parses_or_gives_a_plain_reason(text: str) -> None:
    try:
        folder, athlete = ans.parse_athlete(text)
    except ValueError as exc:
        assert str(exc)  # a reason, never another exception
    else:
        assert str(uuid.UUID(athlete)) == athlete and "/" not in folder and folder


@pytest.mark.parametrize("text", ["jane", "=aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
                                  "a/b=aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
                                  "..=aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
                                  ".hidden=aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
                                  "jane=not-a-uuid"])
def test_refused_athlete_answers(text: str) -> None:
    with pytest.raises(ValueError):
        ans.parse_athlete(text)


def test_a_folder_may_contain_equals() -> None:
    u = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
    assert ans.parse_athlete(f"a=b = {u.upper()}") == ("a=b", u)


text_values = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=20)


@given(st.lists(folders, max_size=4, unique=True), st.lists(st.uuids(), min_size=4,
                                                              max_size=4),
       text_values.filter(lambda s: s.strip() != ""), text_values, text_values,
       st.sampled_from(config_mod.ORIENTATIONS),
       st.lists(st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"),
                        min_size=1, max_size=15), min_size=1, max_size=3, unique=True))
def test_rendered_config_is_what_config_load_reads(folder_names: list[str],
                                                   ids: list[uuid.UUID], selection: str,
                                                   activity: str, movement: str,
                                                   orientation: str,
                                                   watch_names: list[str]) -> None:
    watches = tuple(Path("/srv") / f"w{i}" / n.replace("/", "_").replace("..", "_")
                    for i, n in enumerate(watch_names))
    linked = {f: str(u) for f, u in zip(folder_names, ids[:len(folder_names)], strict=True)}
    answers = ans.Answers(watches=watches, athletes=tuple(linked.items()),
                          camera_setup_selection=selection, camera_orientation=orientation,
                          movement=(("activity", activity), ("movement", movement)),
                          api_url="https://api.example.org/v1")
    text = ans.render(answers, "2024-01-01")
    cfg = config_mod.parse(tomllib.loads(text), Path("/etc/uplift-capture/config.toml"))
    assert [w.path for w in cfg.watches] == list(watches)
    assert dict(cfg.athletes) == linked
    assert cfg.capture.camera_setup_selection == selection
    assert cfg.capture.camera_orientation == orientation
    assert dict(cfg.capture.movement) == {"activity": activity, "movement": movement}
    assert cfg.api.base_url == "https://api.example.org/v1"
