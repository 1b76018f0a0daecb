"""The intake's decision (watch/classify.py), searched with Hypothesis: any facts the intake can
gather (odd folder names, garbage camera clocks, sidecar settings, broken movies, unreadable
files, forced retries) give Ready, Hold or Fail, never an exception; Ready only for a usable
movie in a known athlete's folder, with what the API needs."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path, PurePath
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from daemon.config import ORIENTATIONS, CaptureSettings, ConfigError, capture_overrides
from daemon.jobs.store import Ready
from daemon.timeutil import parse_iso
from daemon.watch import layout
from daemon.watch.classify import MAX_UPLOAD, Facts, Fail, Hold, classify
from daemon.watch.movie import MovieInfo, _usable

ATHLETE = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
ALIASES = {"jane": ATHLETE, "jos\u00e9": "bbbbbbbb-bbbb-cccc-dddd-eeeeeeeeeeee"}
BASE = CaptureSettings(movement={"activity": "golf"})

names = st.binary(min_size=1, max_size=12).map(
    lambda b: os.fsdecode(b.replace(b"\0", b"_").replace(b"/", b"_"))).filter(
    lambda s: s not in (".", ".."))
known = st.sampled_from(["jane", "jose\u0301", ATHLETE, ATHLETE.upper()])
folders = st.one_of(known, known, st.just("bob"), names)
files = st.one_of(st.just("swing.mov"), names.map(lambda s: s + ".mov"))
rels = st.builds(lambda parts, f: PurePath(*parts, f),
                 st.one_of(st.lists(folders, min_size=1, max_size=3), st.just([])), files)
# What a TOML sidecar can hold under [capture]; capture_overrides validates it as intake does.
plain_values = st.one_of(st.text(max_size=10), st.integers(-2**63, 2**63 - 1), st.floats(),
                         st.booleans())
toml_values = st.one_of(plain_values, plain_values, plain_values,
                        st.lists(st.integers(), max_size=2))
sidecars = st.fixed_dictionaries({}, optional={
    "camera_orientation": st.one_of(*[st.sampled_from(ORIENTATIONS)] * 5, st.text(max_size=5)),
    "camera_setup_selection": st.one_of(*[st.just("dual.side")] * 3, st.text(max_size=10)),
    "movement": st.dictionaries(st.text(max_size=8), toml_values, max_size=3),
    "camera": st.dictionaries(st.text(max_size=8), toml_values, max_size=3),
})
# A camera's clock may say anything; movie.py keeps only what classify can use, as in intake.
clocks = st.one_of(st.none(), st.datetimes(timezones=st.just(UTC)).map(_usable))
movies = st.builds(MovieInfo, clocks, st.sampled_from(["portrait", "landscape"] * 2 + [None]))
wall = st.floats(1e9, 4e9)
mtimes = st.floats(-2.0**31, 2.0**34)  # what ext4/xfs can store
reasons = st.text(min_size=1, max_size=30).filter(str.strip)  # intake's reasons say something


@st.composite
def facts(draw: st.DrawFn) -> Facts:
    mtime = draw(mtimes)
    kw: dict[str, Any] = dict(rel=draw(rels), size=draw(st.one_of(
        st.integers(0, MAX_UPLOAD), st.integers(0, 2 * MAX_UPLOAD))),
                              mtime=mtime, mtime_ns=int(mtime * 1e9), now=draw(wall),
                              forced=draw(st.booleans()))
    try:
        kw["settings"] = capture_overrides(draw(sidecars), BASE, Path("/w/jane/capture.toml"))
    except ConfigError as exc:
        kw["settings_problem"] = str(exc)
        return Facts(**kw)
    movie = draw(st.one_of(*[movies.map(lambda m: {"movie": m})] * 3,
                           reasons.map(lambda r: {"not_a_movie": r})))
    kw.update(movie, fingerprint=draw(st.text("0123456789abcdef", min_size=64, max_size=64)))
    if draw(st.booleans()) and draw(st.booleans()):
        kw["unreadable"] = draw(reasons)  # an I/O error while reading it
    return Facts(**kw)


def strict_json(text: str) -> Any:
    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} is not JSON the API can read")
    return json.loads(text, parse_constant=refuse)


@given(facts(), st.dictionaries(names, st.uuids().map(str), max_size=2))
@example(Facts(rel=PurePath("jane", os.fsdecode(b"S\xe9ance"), "a.mov"), size=10, mtime=1e9,
               mtime_ns=10**18, now=2e9, settings=BASE, movie=MovieInfo(None, "portrait")),
         {})  # a Latin-1 session folder: uuid5 raised UnicodeEncodeError
@example(Facts(rel=PurePath(os.fsdecode(b"Jos\xe9"), "a.mov"), size=10, mtime=1e9,
               mtime_ns=10**18, now=2e9, settings=BASE, movie=MovieInfo(None, "portrait")),
         {})  # a Latin-1 athlete folder: the hold reason could not be stored
def test_any_facts_give_a_decision_with_a_reason_a_coach_can_read(
        f: Facts, extra: Mapping[str, str]) -> None:
    v = classify(f, {**extra, **ALIASES}, "/etc/uplift/config.toml")
    assert isinstance(v, Ready | Hold | Fail)
    if isinstance(v, Hold | Fail):
        assert v.reason.strip()
        v.reason.encode("utf-8")  # the job table stores it, the console shows it
    assert classify(f, {**extra, **ALIASES}, "/etc/uplift/config.toml") == v  # pure


@given(facts())
@example(Facts(rel=PurePath("jane", "a.mov"), size=0, mtime=0.0, mtime_ns=0, now=1e9,
               settings=BASE, movie=MovieInfo(datetime(999, 1, 1, tzinfo=UTC), "portrait"),
               fingerprint="0" * 64))  # capture_time was "999-01-01T...", no ISO 8601 time
def test_ready_only_for_a_usable_movie_in_a_known_folder(f: Facts) -> None:
    v = classify(f, ALIASES, "cfg")
    if f.size > MAX_UPLOAD:
        assert isinstance(v, Fail) and "5 GiB" in v.reason
    if not isinstance(v, Ready):
        return
    assert f.size <= MAX_UPLOAD and f.settings is not None and f.settings_problem is None
    assert f.unreadable is None
    assert f.forced or (f.movie is not None and f.not_a_movie is None)
    where = layout.place(f.rel, ALIASES, datetime.fromtimestamp(
        min(parse_iso(v.capture_time), f.now)).date())
    assert where.problem is None and v.athlete_id == where.athlete_id
    assert (v.size, v.mtime_ns, v.fingerprint) == (f.size, f.mtime_ns, f.fingerprint)
    assert v.file_name == layout.safe_file_name(f.rel.name)
    v.file_name.encode("utf-8")
    # never taken in the future: a camera clock ahead is clamped to now
    assert parse_iso(v.capture_time) <= f.now + 1e-3
    camera = strict_json(v.camera_configuration)
    assert camera["camera_orientation"] in ("portrait", "landscape")
    assert camera["camera_setup_selection"] == f.settings.camera_setup_selection
    movement = strict_json(v.movement_attributes)
    assert movement.keys() == dict(f.settings.movement).keys()


@given(facts())
def test_a_movie_without_a_video_track_is_only_ready_when_forced_or_oriented(f: Facts) -> None:
    v = classify(f, ALIASES, "cfg")
    if isinstance(v, Ready) and f.settings and f.settings.camera_orientation == "auto":
        assert f.forced or (f.movie is not None and f.movie.orientation is not None)


@given(sidecars)
@example({"movement": {"speed": math.nan}})  # was accepted, then json.dumps wrote NaN
@example({"camera": {"tilt": -math.inf}})
def test_sidecar_settings_are_refused_naming_the_key_or_sent_as_strict_json(
        data: dict[str, Any]) -> None:
    try:
        settings = capture_overrides(data, BASE, Path("/w/jane/capture.toml"))
    except ConfigError as exc:
        assert str(exc).startswith("/w/jane/capture.toml: ")
        return
    strict_json(json.dumps(dict(settings.movement)))
    strict_json(json.dumps(dict(settings.camera)))
