"""Telling people (issue 14), through the daemon and sandbox as real processes and a real
webhook receiver on loopback (apprise's json:// plugin): failed files, batched failures,
rejected credentials once per incident, no secrets in messages, a dead receiver that never
slows uploads, and `notify-test`."""

from __future__ import annotations

import json
import shutil
import signal
from pathlib import Path

from support import (
    TOKEN,
    Proc,
    Sandbox,
    captures_config,
    cli,
    free_port,
    job_state,
    jobs_by_name,
    make_movie,
    set_config_key,
    start_daemon,
    wait_for,
)
from webhooks import Receiver, Silent


def setup(tmp_path: Path, box: Sandbox, urls: list[str],
          batch: float = 1.0) -> tuple[Path, Path]:
    notify = "[notify]\nurls = [" + ", ".join(f'"{u}"' for u in urls) + "]\n" \
             f"batch_seconds = {batch}"
    captures, config = captures_config(tmp_path, box.base_url, extra=notify)
    return captures / "jane", config


def no_secret(messages: list[dict[str, str]], *secrets: str) -> None:
    text = json.dumps(messages)
    for secret in secrets:
        assert secret not in text


def test_failed_file_gives_one_message_naming_it_and_why(tmp_path: Path, sandbox: Sandbox,
                                                        receiver: Receiver) -> None:
    folder, config = setup(tmp_path, sandbox, [receiver.url()])
    sandbox.faults(reserve=[{"status": 422}])
    daemon = start_daemon(tmp_path, config)
    try:
        shutil.copy(make_movie(tmp_path / "src.mov", frames=3), folder / "refused.mov")
        wait_for(lambda: job_state(config, "refused.mov") == "failed", 30, what="failed")
        (msg,) = wait_for(lambda: receiver.titled("failed to upload"), 15,
                          what="the failure message")
        assert "1 file failed" in msg["title"]
        assert str(folder / "refused.mov") in msg["message"]
        reason = jobs_by_name(config)["refused.mov"]["last_error"]
        assert "422" in reason and reason in msg["message"]
        assert "retry --failed" in msg["message"]
        # The batch was sent; nothing more arrives for the same file.
        wait_for(lambda: daemon.has_event("notify.sent"), 10, what="notify.sent logged")
        assert len(receiver.titled("failed to upload")) == 1
        no_secret(receiver.messages(), TOKEN)
    finally:
        daemon.stop()


def test_five_failures_in_one_batch_window_make_one_message(tmp_path: Path,
                                                            sandbox: Sandbox,
                                                            receiver: Receiver) -> None:
    folder, config = setup(tmp_path, sandbox, [receiver.url()], batch=3.0)
    sandbox.faults(reserve=[{"status": 422}] * 5)
    names = [f"bad{i}.mov" for i in range(5)]
    staged = [make_movie(tmp_path / f"s{i}.mov", frames=2) for i in range(5)]
    daemon = start_daemon(tmp_path, config)
    try:
        for src, name in zip(staged, names, strict=True):
            shutil.copy(src, folder / name)
        wait_for(lambda: all(job_state(config, n) == "failed" for n in names), 30,
                 what="all five failed")
        (msg,) = wait_for(lambda: receiver.titled("failed to upload"), 15,
                          what="the batched message")
        assert "5 files failed" in msg["title"]
        for name in names:
            assert str(folder / name) in msg["message"]
        assert msg["message"].count("the server refused it") == 5
        # The batch is closed: still exactly one message once the notifier is idle again.
        wait_for(lambda: daemon.has_event("notify.sent"), 10, what="notify.sent logged")
        assert len(receiver.titled("failed to upload")) == 1
        no_secret(receiver.messages(), TOKEN)
    finally:
        daemon.stop()


def test_rejected_credentials_notify_once_and_once_resolved(tmp_path: Path, sandbox: Sandbox,
                                                            receiver: Receiver) -> None:
    folder, config = setup(tmp_path, sandbox, [receiver.url()])
    token_file = tmp_path / "token"
    wrong = "wrong-token-7f3a91"
    token_file.write_text(wrong + "\n")
    set_config_key(config, "api", "token_file", f'"{token_file}"')
    # No $UPLIFT_API_TOKEN: the token comes from the file, so it can be fixed in place.
    daemon = Proc(["run", "--config", str(config)], tmp_path / "daemon.log",
                  env={"UPLIFT_API_TOKEN": ""}).start()
    try:
        wait_for(lambda: daemon.has_event("daemon.ready"), 30, what="daemon.ready")
        for i in range(3):
            shutil.copy(make_movie(tmp_path / f"s{i}.mov", frames=2), folder / f"c{i}.mov")
        wait_for(lambda: daemon.has_event("api.credentials_rejected"), 30, what="the 401")
        (problem,) = wait_for(lambda: receiver.titled("problem: credentials rejected"), 15,
                              what="the incident message")
        assert "rejected our credentials" in problem["message"]
        # More files and more tries while the incident lasts: still one message.
        shutil.copy(make_movie(tmp_path / "s3.mov", frames=2), folder / "c3.mov")
        wait_for(lambda: job_state(config, "c3.mov") == "queued", 20, what="c3 queued")
        daemon.signal(signal.SIGUSR1)  # a look at the queue now: no second message either
        token_file.write_text(TOKEN + "\n")
        daemon.signal(signal.SIGHUP)
        wait_for(lambda: all(job_state(config, f"c{i}.mov") == "done" for i in range(4)), 30,
                 what="all done with the fixed token")
        wait_for(lambda: receiver.titled("resolved: credentials rejected"), 15,
                 what="the resolved message")
        assert len(receiver.titled("problem: credentials rejected")) == 1
        assert len(receiver.titled("resolved: credentials rejected")) == 1
        no_secret(receiver.messages(), TOKEN, wrong)
        assert wrong not in daemon.log_path.read_text()
    finally:
        daemon.stop()


def test_dead_receivers_never_slow_uploads(tmp_path: Path, sandbox: Sandbox) -> None:
    hung = Silent()
    folder, config = setup(tmp_path, sandbox, [f"json://127.0.0.1:{hung.port}/hook",
                                               f"json://127.0.0.1:{free_port()}/hook"],
                           batch=0.5)
    sandbox.faults(reserve=[{"status": 422}])
    daemon = start_daemon(tmp_path, config)
    try:
        shutil.copy(make_movie(tmp_path / "src.mov", frames=2), folder / "refused.mov")
        wait_for(lambda: job_state(config, "refused.mov") == "failed", 30, what="failed")
        # The notifier thread is now stuck in a send that never gets an answer...
        wait_for(lambda: hung.accepted, 15, what="the hung receiver to be called")
        names = [f"ok{i}.mov" for i in range(3)]
        for i, name in enumerate(names):
            shutil.copy(make_movie(tmp_path / f"s{i}.mov", frames=3), folder / name)
        # ...and the uploads go all the same, as fast as without notifications.
        wait_for(lambda: all(job_state(config, n) == "done" for n in names), 20,
                 what="uploads done while the receiver hangs")
        assert len(sandbox.state()["uploads"]) == 3
    finally:
        daemon.stop()
        hung.close()


def test_notify_test_says_which_url_worked(tmp_path: Path, sandbox: Sandbox,
                                           receiver: Receiver) -> None:
    dead = f"json://127.0.0.1:{free_port()}/hook"
    _, config = setup(tmp_path, sandbox, [receiver.url()])
    out = cli("notify-test", "--config", str(config))
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.startswith("ok")
    (msg,) = wait_for(receiver.messages, 10, what="the test message")
    assert "test" in msg["title"]

    both = tmp_path / "both"
    both.mkdir()
    _, config = setup(both, sandbox, [receiver.url(), dead])
    out = cli("notify-test", "--config", str(config))
    assert out.returncode == 1, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("ok") and str(receiver.port) in lines[0]
    assert lines[1].startswith("FAIL") and dead.split("/")[2] in lines[1]
    assert len(receiver.messages()) == 2
