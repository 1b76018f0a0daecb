"""The console's words for a coach (daemon/web/words.py) over generated input (Hypothesis): from
any reason, notice or hold, the real ones `status` shows with any folder, config path and time in
them, the coach's words never carry a path, a `[section]`, a command or a `.toml`; and each kind
of reason a coach sees says what it means, with Retry only where pressing it can help."""

from __future__ import annotations

import re
from datetime import date, datetime
from pathlib import Path, PurePath

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemon.config import CaptureSettings, WatchRoot
from daemon.jobs import fleet
from daemon.watch import layout, roots
from daemon.web import words
from daemon.work import gate, outcomes

SECTION = re.compile(r"\[[A-Za-z_.]+\]")
STATES = st.sampled_from(["pending", "queued", "failed", "skipped", "done"])
texty = st.text(st.characters(blacklist_categories=("Cs",)), max_size=80)
paths = st.lists(st.text(st.characters(whitelist_categories=("L", "N")), min_size=1,
                         max_size=12), min_size=1, max_size=4).map(lambda p: "/" + "/".join(p))
FIXED = [
    "recording is incomplete: no index (moov)",
    "recording is incomplete: the file ends inside an atom header",
    "not a QuickTime movie: its movie header (mvhd) is damaged",
    "the file is larger than 5 GiB, the most one upload to Uplift can take",
    "the server refused it: HTTP 400: unknown athlete",
    "the upload window ran out 9 times in a row before the upload was through",
    "settling: waiting for the file to stop changing",
    "waiting for a free upload slot",
    "backing off until 14:05",
    "uploads paused by an operator until 18:30; running uploads finish",
    "folder settings are invalid: /srv/c/jane/capture.toml: line 3: [capture] x: bad",
    "[upload] bandwidth_limit: '9TiB/s' is more than 1 TiB/s, faster than any link",
]


@st.composite
def admin_reasons(draw: st.DrawFn) -> str:
    """A reason as `status` words it, with a drawn folder, config path and watch folder."""
    folder, config = draw(texty.filter(bool)), draw(paths) + ".toml"
    kind = draw(st.integers(0, 5))
    if kind == 0:
        return str(layout.place(PurePath(folder, "a.mov"), {}, date(2026, 1, 1),
                                config).problem)
    if kind == 1:
        return str(gate.hold((True, None), None, 0.0, datetime(2026, 1, 1), config)[1])
    if kind == 2:
        root = WatchRoot(path=Path(draw(paths)), capture=CaptureSettings())
        return roots.message(root, "station-1", False, config)
    if kind == 3:
        return outcomes.PAUSE_NOTICE["credentials"].format(reason="HTTP 401", at="14:05",
                                                           check=f"uplift-capture check "
                                                                 f"--config {config}")
    if kind == 4:
        return fleet.waiting_reason(draw(texty))
    return draw(st.sampled_from(FIXED)) + draw(texty)


def clean(text: str) -> None:
    assert "/" not in text and "\\" not in text, text
    assert not SECTION.search(text), text
    assert "uplift-capture" not in text and ".toml" not in text, text


@given(admin_reasons() | texty, STATES)
def test_no_admin_words_reach_a_coach(admin: str, state: str) -> None:
    said = words.reason(admin, state)
    clean(said.text)
    assert said.text  # always something to read


@given(st.sampled_from(["paused", "credentials", "certificate", "watch_folder", "database",
                        "low_disk", "hours"]) | texty, admin_reasons() | texty)
def test_banners_and_holds_are_coach_words(name: str, admin: str) -> None:
    clean(words.notice(name, admin))
    clean(words.hold(admin) or "")


@pytest.mark.parametrize(("admin", "state", "says", "retry"), [
    ("recording is incomplete: no index (moov)", "failed", "record it again", False),
    ("not a QuickTime movie: the file is empty", "failed", "empty", False),
    ("not a QuickTime movie: its sample tables are damaged", "failed", "damaged", False),
    ("the file is larger than 5 GiB, the most one upload to Uplift can take", "failed",
     "trim or split", False),
    ("the upload window ran out 9 times in a row before the upload was through", "failed",
     "Retry", True),
    ("the server refused it: HTTP 400: unknown athlete", "failed", "Uplift refused it", True),
    ("something nobody foresaw", "failed", "Retry", True),
    ("the same video is being uploaded as job 7; waiting for it to finish", "queued",
     "uploading now", False),
    ("waits for upload hours, from Mon 19:00", "queued", "at Mon 19:00", False),
    ("backing off until 14:05", "queued", "by itself at 14:05", False),
])
def test_each_reason_says_what_it_means(admin: str, state: str, says: str,
                                        retry: bool) -> None:
    said = words.reason(admin, state)
    assert says in said.text and said.retry is retry


def test_an_unlinked_folder_points_at_the_link_panel() -> None:
    admin = layout.place(PurePath("Tom", "a.mov"), {}, date(2026, 1, 1),
                         "/etc/uplift-capture/config.toml").problem
    assert words.reason(admin, "pending").text.startswith(
        "Waiting for an athlete: link this folder above")


words_in_paths = st.lists(st.sampled_from(["disk2", "space", "paused", "database", "srv", "jo",
                                           "upload hours", "HTTP 503"]),
                          min_size=1, max_size=4).map(lambda p: "/" + "/".join(p) + "/a.mov")


@given(words_in_paths)
def test_a_recording_being_written_reads_as_that_whatever_the_files_path(path: str) -> None:
    """`while_recording = "pause"`: the hold is normal and ends by itself. The coach reads that,
    not "needs attention; ask whoever…", nor a full disk or an operator's pause because the
    recording's folder is called so."""
    from daemon.station import recording

    admin = recording.reason(path)
    banner = words.notice(recording.NOTICE, admin)
    job = words.reason(admin, "pending")
    held = words.hold(admin)
    for text in (banner, job.text, held or ""):
        assert "recording is being written" in text, (path, text)
        assert "attention" not in text and "full" not in text and "paused" not in text
        assert path not in text
    assert not job.retry


@given(words_in_paths)
def test_a_lost_or_hung_folder_is_not_a_full_disk_whatever_its_path(path: str) -> None:
    """A watch folder on /mnt/disk2 that is gone, or a hung read on it, is storage not connected
    or not answering: not "disk full", not "cannot save its records"."""
    for name, admin in (
            ("watch_folder", f"the watch folder {path} cannot be watched: gone; files in it "
                             f"wait until it is back"),
            ("settle", f"reading {path} has not finished in over 120 s (a hung network share "
                       f"or device?); other files go on")):
        text = words.notice(name, admin)
        assert "storage" in text and "full" not in text and "records" not in text, text
    assert "full" in words.notice("low_disk", f"low disk space: less than 1 GiB free on the "
                                              f"file system of {path}")
    assert "full" in words.notice("database", "cannot write the job database: disk full")
