"""Behaving as a service: signals, reload, systemd notify, JSON logs, secrets, check, the unit."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from support import (
    ATHLETE,
    TOKEN,
    Sandbox,
    captures_config,
    cli,
    job_state,
    jobs_by_name,
    make_movie,
    start_daemon,
    status,
    wait_for,
    write_config,
)

REPO = Path(__file__).resolve().parents[2]


def setup(tmp_path: Path, box: Sandbox, upload: str = "", athletes: dict | None = None):
    return captures_config(tmp_path, box.base_url, upload=upload, athletes=athletes)


def test_sigterm_with_upload_in_flight_exits_0_and_resumes(tmp_path: Path,
                                                           sandbox: Sandbox) -> None:
    captures, config = setup(tmp_path, sandbox, "shutdown_timeout = 1")
    sandbox.faults(upload_rate=100_000)
    movie = make_movie(tmp_path / "m.mov", frames=20)  # ~1 MB: 10 s at this rate
    daemon = start_daemon(tmp_path, config)
    shutil.copy(movie, captures / "jane" / "long.mov")
    wait_for(lambda: job_state(config, "long.mov") == "uploading", 30, what="uploading")
    started = time.monotonic()
    daemon.signal(signal.SIGTERM)
    assert daemon.popen.wait(20) == 0
    assert time.monotonic() - started < 10
    job = jobs_by_name(config)["long.mov"]
    assert job["state"] == "queued" and "shutdown" in job["last_error"]
    sandbox.faults(upload_rate=None)
    daemon = start_daemon(tmp_path, config, name="daemon-2.log")
    try:
        wait_for(lambda: job_state(config, "long.mov") == "done", 30, what="done after restart")
        assert len(sandbox.uploads_for("long.mov")) == 1
    finally:
        assert daemon.stop() == 0


def test_second_sigterm_stops_at_once(tmp_path: Path, sandbox: Sandbox) -> None:
    captures, config = setup(tmp_path, sandbox, "shutdown_timeout = 60")
    sandbox.faults(upload_rate=50_000)
    daemon = start_daemon(tmp_path, config)
    shutil.copy(make_movie(tmp_path / "m.mov", frames=20), captures / "jane" / "slow.mov")
    wait_for(lambda: job_state(config, "slow.mov") == "uploading", 30, what="uploading")
    daemon.signal(signal.SIGTERM)
    time.sleep(0.5)
    assert daemon.popen.poll() is None  # still giving the upload its time
    started = time.monotonic()
    daemon.signal(signal.SIGTERM)
    daemon.popen.wait(15)
    assert time.monotonic() - started < 12
    assert job_state(config, "slow.mov") == "queued"  # parked, not lost


def test_sighup_picks_up_a_new_alias(tmp_path: Path, sandbox: Sandbox) -> None:
    captures, config = setup(tmp_path, sandbox)
    daemon = start_daemon(tmp_path, config)
    try:
        (captures / "bob").mkdir()
        shutil.copy(make_movie(tmp_path / "m.mov", frames=3), captures / "bob" / "b.mov")
        wait_for(lambda: "'bob'" in (jobs_by_name(config).get("b.mov", {}).get("last_error")
                                     or ""), 20, what="held for bob")
        write_config(config, watch=captures, db=tmp_path / "jobs.db", base_url=sandbox.base_url,
                     athletes={"jane": ATHLETE, "bob": "22222222-3333-4444-5555-666666666666"})
        daemon.signal(signal.SIGHUP)
        wait_for(lambda: job_state(config, "b.mov") == "done", 20, what="done after SIGHUP")
        assert jobs_by_name(config)["b.mov"]["athlete_id"] == \
            "22222222-3333-4444-5555-666666666666"
        assert daemon.has_event("config.reloaded")
        # A broken config on reload is reported and the old one kept.
        config.write_text(config.read_text() + "\nbogus = 1\n")
        daemon.signal(signal.SIGHUP)
        wait_for(lambda: daemon.has_event("config.reload_failed"), 10, what="reload_failed")
        assert daemon.popen.poll() is None
    finally:
        assert daemon.stop() == 0


def test_systemd_notify_ready_watchdog_stopping(tmp_path: Path, sandbox: Sandbox) -> None:
    _, config = setup(tmp_path, sandbox)
    sock_path = tmp_path / "notify.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(sock_path))
    listener.settimeout(15)
    from support import Proc

    daemon = Proc(["run", "--config", str(config)], tmp_path / "daemon.log",
                  env={"UPLIFT_API_TOKEN": TOKEN, "NOTIFY_SOCKET": str(sock_path),
                       "WATCHDOG_USEC": "1000000"}).start()
    try:
        messages: list[str] = []

        def received(word: str) -> bool:
            while not any(word in m for m in messages):
                messages.append(listener.recv(4096).decode())
            return True

        assert received("READY=1")
        assert received("WATCHDOG=1")
        daemon.signal(signal.SIGTERM)
        assert received("STOPPING=1")
        assert daemon.popen.wait(20) == 0
    finally:
        daemon.kill()
        listener.close()


def test_logs_are_json_and_secrets_appear_nowhere(tmp_path: Path, sandbox: Sandbox) -> None:
    captures, config = setup(tmp_path, sandbox)
    daemon = start_daemon(tmp_path, config)
    try:
        shutil.copy(make_movie(tmp_path / "m.mov", frames=3), captures / "jane" / "a.mov")
        wait_for(lambda: job_state(config, "a.mov") == "done", 30, what="done")
    finally:
        daemon.stop()
    bad = start_daemon(tmp_path, config, token=TOKEN + "-but-wrong", name="daemon-bad.log")
    try:
        shutil.copy(make_movie(tmp_path / "n.mov", frames=3), captures / "jane" / "b.mov")
        wait_for(lambda: bad.has_event("api.credentials_rejected"), 30, what="401")
    finally:
        bad.stop()

    logs = [p.read_text() for p in tmp_path.glob("daemon*.log")]
    for text in logs:
        for line in text.splitlines():
            json.loads(line)  # every line is a JSON object when stdout is not a terminal
    db_bytes = b"".join(p.read_bytes() for p in tmp_path.glob("jobs.db*"))
    with sqlite3.connect(tmp_path / "jobs.db") as conn:
        dump = "\n".join(conn.iterdump())
    outputs = [cli("status", "--config", str(config)).stdout,
               cli("status", "--json", "--all", "--config", str(config)).stdout]
    secrets = [TOKEN, "eyJleHBpcmF0aW9u", "x-amz-signature", "X-Amz-Signature"]
    for haystack in [*logs, dump, *outputs]:
        for secret in secrets:
            assert secret not in haystack
    for secret in secrets:
        assert secret.encode() not in db_bytes
    assert "upload.done" in logs[0] or any("upload.done" in t for t in logs)


def test_check_reports_each_problem_on_one_line(tmp_path: Path, sandbox: Sandbox) -> None:
    captures, config = setup(tmp_path, sandbox)
    good = cli("check", "--config", str(config), env={"UPLIFT_API_TOKEN": TOKEN})
    assert good.returncode == 0, good.stdout
    assert "the API accepts the token" in good.stdout
    assert len(sandbox.state()["reservations"]) == 0  # the probe creates no capture
    wrong = cli("check", "--config", str(config), env={"UPLIFT_API_TOKEN": "nope-nope"})
    assert wrong.returncode == 1
    (line,) = [x for x in wrong.stdout.splitlines() if x.startswith("FAIL")]
    assert "rejected the token" in line
    env_without = {"UPLIFT_API_TOKEN": ""}
    missing = cli("check", "--config", str(config), env=env_without)
    assert missing.returncode == 1 and "no API token" in missing.stdout
    unreachable = write_config(tmp_path / "c2.toml", watch=captures, db=tmp_path / "j2.db",
                               base_url="http://127.0.0.1:9/v1")
    down = cli("check", "--config", str(unreachable), env={"UPLIFT_API_TOKEN": TOKEN})
    assert down.returncode == 1 and "cannot reach the API" in down.stdout
    offline = cli("check", "--offline", "--config", str(unreachable))
    assert offline.returncode == 0
    for bad_upload, words in (("concurency = 1", "unknown key"),
                              ('after_upload = "move"', "archive_dir: required"),
                              ('bandwidth_limit = "fast"', "not a rate")):
        broken = write_config(tmp_path / "bad.toml", watch=captures, db=tmp_path / "j3.db",
                              upload=bad_upload)
        out = cli("check", "--config", str(broken))
        assert out.returncode == 2 and words in out.stderr
        assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr


def test_systemd_unit_exposure_is_at_most_2() -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed on this machine")
    out = subprocess.run(["systemd-analyze", "security", "--offline=yes",
                          str(REPO / "systemd" / "uplift-capture.service")],
                         capture_output=True, text=True)
    line = next(x for x in out.stdout.splitlines() if "Overall exposure level" in x)
    exposure = float(line.split(":")[1].split()[0])
    assert exposure <= 2.0, line


def test_status_shows_progress_rate_and_eta(tmp_path: Path, sandbox: Sandbox) -> None:
    captures, config = setup(tmp_path, sandbox)
    sandbox.faults(upload_rate=200_000)
    daemon = start_daemon(tmp_path, config)
    try:
        shutil.copy(make_movie(tmp_path / "m.mov", frames=30), captures / "jane" / "p.mov")
        job = wait_for(lambda: next((j for j in status(config)["jobs"]
                                     if j.get("eta_seconds")), None), 30, what="an ETA")
        assert 0 < job["percent"] < 100 and job["rate_bytes_per_s"] > 0
        text = cli("status", "--config", str(config)).stdout
        assert "Uploading:" in text and "MB/s" in text and "left" in text
        sandbox.faults(upload_rate=None)
    finally:
        daemon.stop()
