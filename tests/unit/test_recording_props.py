"""Issue 33, item 3: the recording's pure parts (`while_recording` parsed, which recording is
reported and for how long, the lower of two limits), the gate's hold, and the detector on a real
file with a clock of the test's own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemon.config import ConfigError
from daemon.config.parse import parse
from daemon.net.bandwidth import lower, parse_rate
from daemon.service import control
from daemon.station import recording
from daemon.station.recording import CONTINUE, PAUSE, Recordings, parse_policy, writing
from daemon.work.gate import PAUSE_RECHECK, Gate

RATES = st.sampled_from(["2MB/s", "512KiB/s", "10M", "8Mbit/s", "128K", "1GiB/s", "300"])


@given(st.sampled_from([CONTINUE, PAUSE]), st.sampled_from(["", " "]), st.booleans())
def test_the_words_are_themselves_in_any_case(word: str, gap: str, upper: bool) -> None:
    assert parse_policy(gap + (word.upper() if upper else word) + gap) == word


@given(RATES)
def test_a_rate_is_the_rate_of_bandwidth_limit(text: str) -> None:
    assert parse_policy(text) == parse_rate(text) > 0


@given(st.sampled_from(["off", "0", "OFF", "unlimited"]))
def test_no_limit_is_continue(text: str) -> None:
    assert parse_policy(text) == CONTINUE


@given(st.text(max_size=12))
def test_any_text_is_a_policy_or_refused_with_the_choices(text: str) -> None:
    try:
        policy = parse_policy(text)
    except ValueError as exc:
        assert '"continue", "pause"' in str(exc)
        return
    assert policy in (CONTINUE, PAUSE) or (isinstance(policy, float) and policy >= 1)


def test_the_config_refuses_a_bad_value_naming_the_key(tmp_path: Path) -> None:
    source, watch = tmp_path / "config.toml", [{"path": str(tmp_path)}]
    with pytest.raises(ConfigError, match=r"\[upload\] while_recording.*\"pause\""):
        parse({"watch": watch, "upload": {"while_recording": "hold"}}, source)
    assert parse({"watch": watch}, source).upload.while_recording == CONTINUE
    cfg = parse({"watch": watch, "upload": {"while_recording": "2MB/s"}}, source)
    assert cfg.upload.while_recording == "2MB/s"


CHANGES = st.dictionaries(st.sampled_from(["/c/a.mov", "/c/b.raw", "/c/x/c", "/c/d"]),
                          st.floats(0, 100), max_size=4)


@given(CHANGES, st.floats(100, 200), st.floats(0.1, 30),  # changes are in the past
       st.sampled_from([None, "/c/a.mov", "/c/b.raw"]))
def test_a_recording_is_a_file_changed_within_settle(
        changed: dict[str, float], now: float, settle: float, prefer: str | None) -> None:
    live = {p for p, at in changed.items() if now - at < settle}
    found = writing(changed, now, settle, prefer)
    if not live:
        assert found is None
        return
    assert found is not None
    path, left = found
    assert path in live and (path == prefer or prefer not in live)
    # held until the last change of any of them is settle old
    assert left == pytest.approx(max(changed[p] for p in live) + settle - now)
    assert 0 < left <= settle + 1e-9


@given(st.floats(0, 1e9), st.floats(0, 1e9))
def test_the_lower_limit_wins_and_zero_is_none(a: float, b: float) -> None:
    got = lower(a, b)
    assert got == lower(b, a)
    if a == 0 or b == 0:
        assert got == max(a, b)
    else:
        assert got == min(a, b)


class Notices:
    def __init__(self, current: dict[str, Any]) -> None:
        self.current, self.reads = current, 0

    def notices(self) -> dict[str, Any]:
        self.reads += 1
        return dict(self.current)


def test_the_gate_shows_the_daemons_notice_in_the_same_read_as_the_pause() -> None:
    why = recording.reason("/c/jane/take.raw")
    store = Notices({recording.NOTICE: {"message": why, "until": None}})
    gate = Gate(store, "", wall=lambda: 1000.0, clock=lambda: 0.0)
    assert gate.check() == (recording.HOLD_MIN, why) and store.reads == 1
    store.current[control.NOTICE] = {"message": "paused", "until": None}
    gate.forget()
    assert gate.check()[0] == PAUSE_RECHECK  # the operator's pause says more


def test_the_daemons_gate_asks_its_own_recordings_not_the_table() -> None:
    store = Notices({})
    gate = Gate(store, "", wall=lambda: 1000.0, clock=lambda: 0.0,
                recordings=lambda: (1.5, "waits"))
    assert gate.check() == (1.5, "waits")


class Told:
    def __init__(self) -> None:
        self.holds: list[str | None] = []
        self.caps: list[float] = []


def detector(policy: str, mono: list[float], told: Told) -> Recordings:
    return Recordings(lambda: parse_policy(policy), lambda: 2.0, told.holds.append,
                      told.caps.append, clock=lambda: mono[0])


def test_pause_holds_while_the_file_grows_and_ends_settle_after(tmp_path: Path) -> None:
    raw, mono, told = tmp_path / "take.raw", [10.0], Told()
    raw.write_bytes(b"x")
    found = detector(PAUSE, mono, told)
    found.seen(str(raw))
    assert told.holds == [recording.reason(str(raw))] and found.hold()[1] == told.holds[0]
    for _ in range(5):  # it keeps growing: each look sees it changed
        mono[0] += 1.5
        with open(raw, "ab") as f:
            f.write(b"x")
        found.look()
    assert len(told.holds) == 1 and found.hold()[0] == pytest.approx(2.0)
    mono[0] += 1.9
    found.look()
    assert len(told.holds) == 1  # not yet settle_seconds without a change
    mono[0] += 0.2
    found.look()
    assert told.holds[-1] is None and found.hold() == (0.0, None)
    assert told.caps == [0.0, 0.0]


def test_a_rate_caps_and_continue_costs_nothing(tmp_path: Path) -> None:
    raw, mono, told = tmp_path / "take.raw", [10.0], Told()
    raw.write_bytes(b"x")
    found = detector("128KiB/s", mono, told)
    found.seen(str(raw))
    assert told.caps == [128 * 1024] and told.holds == [None] and found.hold() == (0.0, None)
    mono[0] += 2.0
    found.look()
    assert told.caps[-1] == 0.0
    quiet = detector(CONTINUE, mono, Told())
    quiet.seen(str(raw))
    assert quiet.current() is None


def test_what_is_no_regular_file_is_no_recording(tmp_path: Path) -> None:
    mono, told = [0.0], Told()
    found = detector(PAUSE, mono, told)
    (tmp_path / "folder").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "folder")
    for name in ("folder", "link", "gone"):
        found.seen(str(tmp_path / name))
    assert told.holds == [] and found.current() is None
