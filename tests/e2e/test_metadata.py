"""Capture metadata read from the movie and from where it was dropped, checked in the
reservations the sandbox received; files that are not finished movies are never reserved."""

from __future__ import annotations

import os
import random
import shutil
import time
import uuid
from datetime import datetime
from pathlib import Path

from support import (
    ATHLETE,
    Sandbox,
    cli,
    jobs_by_name,
    make_movie,
    start_daemon,
    wait_for,
    write_config,
)

from daemon.watch.layout import NAMESPACE


def request_for(box: Sandbox, name: str) -> dict:
    (reservation,) = box.reservations_for(name)
    return reservation["request"]


def iso(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_metadata_from_movie_and_folders(tmp_path: Path, sandbox: Sandbox) -> None:
    captures = tmp_path / "captures"
    athlete = captures / ATHLETE
    captures.mkdir()
    # The same source is copied into several folders on purpose.
    config = write_config(tmp_path / "config.toml", watch=captures, db=tmp_path / "jobs.db",
                          base_url=sandbox.base_url, upload="allow_duplicates = true")
    src = tmp_path / "src"
    group = "99999999-8888-7777-6666-555555555555"
    files = {
        "landscape.mov": make_movie(src / "landscape.mov", 2, 320, 240),
        "portrait.mov": make_movie(src / "portrait.mov", 2, 240, 320),
        "rotated.mov": make_movie(src / "rotated.mov", 2, 320, 240, rotate=90),
        "stamped.mov": make_movie(src / "stamped.mov", 2, metadata={
            "creation_time": "2026-05-13T12:00:00.000000Z"}),
        "apple.mov": make_movie(src / "apple.mov", 2, apple_tags=True, metadata={
            "com.apple.quicktime.creationdate": "2026-05-13T14:30:00+0200"}),
    }
    plain = make_movie(src / "plain.mov", 2)
    future = make_movie(src / "future.mov", 2)
    good = make_movie(src / "good.mov", 6).read_bytes()
    daemon = start_daemon(tmp_path, config)
    try:
        athlete.mkdir(parents=True)
        for name, path in files.items():
            shutil.copy(path, athlete / name)
        # No creation time: the file's mtime is used, and one in the future is clamped.
        shutil.copy(plain, athlete / "plain.mov")
        os.utime(athlete / "plain.mov", (1_700_000_000, 1_700_000_000))
        shutil.copy(future, athlete / "future.mov")
        os.utime(athlete / "future.mov", (4_000_000_000, 4_000_000_000))
        # A session folder with a sidecar, and a UUID-named session folder.
        warmup = athlete / "warmup"
        warmup.mkdir()
        (warmup / "capture.toml").write_text(
            'camera_setup_selection = "single.down_the_line"\ncamera_orientation = "portrait"\n'
            '[movement]\nmovement = "putt"\nclub = "putter"\n[camera]\nlens = "wide"\n')
        shutil.copy(files["landscape.mov"], warmup / "side.mov")
        (athlete / group).mkdir()
        shutil.copy(plain, athlete / group / "grouped.mov")
        (athlete / "broken").mkdir()
        (athlete / "broken" / "capture.toml").write_text("[movement\nactivity = 1\n")
        shutil.copy(plain, athlete / "broken" / "held.mov")
        # A name Linux allows but the API does not.
        shutil.copy(files["stamped.mov"], athlete / "back\\slash.mov")
        # Not finished movies: truncated, random bytes, empty.
        (athlete / "truncated.mov").write_bytes(good[: len(good) // 2])
        (athlete / "noise.mov").write_bytes(random.Random(3).randbytes(50_000))
        (athlete / "empty.mov").write_bytes(b"")

        names = [*files, "plain.mov", "future.mov", "side.mov", "grouped.mov",
                 "back\\slash.mov"]
        wait_for(lambda: all(jobs_by_name(config).get(n, {}).get("state") == "done"
                             for n in names), 40, what="all good files done")
        jobs = jobs_by_name(config)

        orientation = {n: request_for(sandbox, n)["camera_configuration"]["camera_orientation"]
                       for n in files}
        assert orientation == {"landscape.mov": "landscape", "portrait.mov": "portrait",
                               "rotated.mov": "portrait", "stamped.mov": "landscape",
                               "apple.mov": "landscape"}
        assert request_for(sandbox, "stamped.mov")["capture_time"] == "2026-05-13T12:00:00.000Z"
        assert request_for(sandbox, "apple.mov")["capture_time"] == "2026-05-13T12:30:00.000Z"
        assert request_for(sandbox, "plain.mov")["capture_time"] == "2023-11-14T22:13:20.000Z"
        clamped = iso(request_for(sandbox, "future.mov")["capture_time"])
        assert time.time() - 120 < clamped <= time.time()
        for name in names:
            sent = name.replace("\\", "_")  # the API refuses a backslash: a safe name is sent
            assert request_for(sandbox, sent)["capture_time"].endswith("Z")

        side = request_for(sandbox, "side.mov")
        assert side["camera_configuration"] == {"camera_setup_selection": "single.down_the_line",
                                                "camera_orientation": "portrait",
                                                "lens": "wide"}
        assert side["movement_attributes"] == {"activity": "golf", "movement": "putt",
                                               "club": "putter"}
        assert side["session_group_id"] == str(uuid.uuid5(NAMESPACE, f"{ATHLETE}/session/warmup"))
        assert request_for(sandbox, "grouped.mov")["session_group_id"] == group
        day = datetime.fromtimestamp(1_700_000_000).date().isoformat()
        assert request_for(sandbox, "plain.mov")["session_group_id"] == \
            str(uuid.uuid5(NAMESPACE, f"{ATHLETE}/day/{day}"))
        assert request_for(sandbox, "back\\slash.mov".replace("\\", "_"))["file_name"] == \
            "back_slash.mov"

        def ended(name: str) -> dict:
            return wait_for(lambda: jobs_by_name(config).get(name) if jobs_by_name(config).get(
                name, {}).get("state") in ("failed", "pending") and jobs_by_name(config)[name][
                "last_error"] else None, 20, what=f"{name} to end with a reason")

        assert "recording is incomplete" in ended("truncated.mov")["last_error"]
        assert "not a QuickTime movie" in ended("noise.mov")["last_error"]
        assert "empty" in ended("empty.mov")["last_error"]
        held = ended("held.mov")
        assert held["state"] == "pending" and "broken/capture.toml" in held["last_error"]
        for name in ("truncated.mov", "noise.mov", "empty.mov", "held.mov"):
            assert jobs_by_name(config)[name]["state"] in ("failed", "pending")
            assert not sandbox.reservations_for(name)
        assert jobs["landscape.mov"]["state"] == "done"

        # An operator can force a refused file through.
        noise_id = str(jobs_by_name(config)["noise.mov"]["id"])
        out = cli("retry", "--force", noise_id, "--config", str(config))
        assert out.returncode == 0 and noise_id in out.stdout
        daemon.stop()
        daemon = start_daemon(tmp_path, config, name="daemon-2.log")
        wait_for(lambda: jobs_by_name(config)["noise.mov"]["state"] == "done", 30,
                 what="the forced file to be uploaded")
    finally:
        daemon.stop()


def test_workstation_clock_ahead_of_the_api_never_costs_a_capture(tmp_path: Path,
                                                                   sandbox: Sandbox) -> None:
    captures = tmp_path / "captures"
    (captures / ATHLETE).mkdir(parents=True)
    config = write_config(tmp_path / "config.toml", watch=captures, db=tmp_path / "jobs.db",
                          base_url=sandbox.base_url)
    sandbox.faults(clock_offset=-300.0)  # the API's clock is 5 minutes behind ours
    daemon = start_daemon(tmp_path, config)
    try:
        shutil.copy(make_movie(tmp_path / "now.mov", 2), captures / ATHLETE / "now.mov")
        wait_for(lambda: jobs_by_name(config).get("now.mov", {}).get("state") == "done", 30,
                 what="done")
        sent = iso(request_for(sandbox, "now.mov")["capture_time"])
        assert sent <= time.time() - 300  # not in the future by the API's clock
        assert daemon.has_event("api.clock_skew")
        # Learnt once: the next file is reserved at the first try.
        shutil.copy(make_movie(tmp_path / "next.mov", 2), captures / ATHLETE / "next.mov")
        wait_for(lambda: jobs_by_name(config).get("next.mov", {}).get("state") == "done", 30,
                 what="done")
        assert sum(e.get("event") == "api.clock_skew" for e in daemon.events()) == 1
    finally:
        daemon.stop()
