"""`uplift-capture setup` on a temporary host: the config it writes is one `config.load`
accepts, with its modes; the token as a root-only file or encrypted with systemd-creds; the
refusals; the interview asks again after a wrong answer. `check` runs for real against the
sandbox."""

from __future__ import annotations

import argparse
import grp
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from support import ATHLETE, Proc, Sandbox, wait_for

from daemon import cli
from daemon import config as config_mod
from daemon.setup import Host, run
from daemon.setup.host import store_token


def _host(tmp: Path, creds: str | None = None) -> Host:
    return Host(config=tmp / "etc" / "config.toml", group=grp.getgrgid(os.getgid()).gr_name,
                dropin_dir=tmp / "dropin", systemd_creds=creds, systemd_running=False)


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    from daemon import setup

    setup.add_parser(sub)
    return parser.parse_args(["setup", *argv])


def _flags(tmp: Path, sandbox: Sandbox, *more: str) -> argparse.Namespace:
    (tmp / "watch").mkdir(exist_ok=True)
    (tmp / "token").write_text(sandbox.token + "\n")
    return _args("--non-interactive", "--watch", str(tmp / "watch"),
                 "--athlete", f"jane={ATHLETE.upper()}", "--token-file", str(tmp / "token"),
                 "--api-url", sandbox.base_url, "--activity", "tennis", *more)


def test_non_interactive_writes_a_config_load_accepts(tmp_path: Path, sandbox: Sandbox,
                                                      capfd: pytest.CaptureFixture) -> None:
    host = _host(tmp_path)
    assert run(_flags(tmp_path, sandbox, "--no-start"), host) == 0
    out = capfd.readouterr().out  # capfd: `check` runs as a child process
    cfg = config_mod.load(str(host.config))
    assert [w.path for w in cfg.watches] == [tmp_path / "watch"]
    assert dict(cfg.athletes) == {"jane": ATHLETE}
    assert cfg.capture.movement["activity"] == "tennis"
    assert cfg.api.base_url == sandbox.base_url
    st = host.config.stat()
    assert (st.st_mode & 0o777, st.st_gid) == (0o640, os.getgid())
    # The token is not in the config but in a root-only file the unit's LoadCredential= names.
    assert sandbox.token not in host.config.read_text()
    assert host.token_file.read_text().strip() == sandbox.token
    assert host.token_file.stat().st_mode & 0o777 == 0o600
    assert not host.dropin.exists()
    unit = (Path(__file__).parents[2] / "systemd/uplift-capture.service").read_text()
    assert f"LoadCredential=uplift-api-token:{Path('/etc/uplift-capture/token')}" in unit
    # `check` ran for real (the sandbox answered the token), and nothing was started.
    assert "FAIL" not in out and "ok   the API accepts the token" in out
    assert "check found problems" not in out
    assert "not started (--no-start)" in out and "console: http://127.0.0.1:8780/" in out
    # Issue 30, item 3: never a console without a password; one was made up and its file named.
    assert cfg.web.password_file == host.console_password_file
    made_up = host.console_password_file.read_text().strip()
    assert len(made_up) >= 16 and made_up not in out
    st = host.console_password_file.stat()
    assert (st.st_mode & 0o777, st.st_gid) == (0o640, os.getgid())
    assert f"made up and is in {host.console_password_file}" in out


def test_the_console_password_comes_from_a_file_or_is_asked(tmp_path: Path,
                                                            sandbox: Sandbox) -> None:
    host = _host(tmp_path)
    (tmp_path / "pw").write_text("a coach's own password\n")
    assert run(_flags(tmp_path, sandbox, "--no-start", "--console-password-file",
                      str(tmp_path / "pw")), host) == 0
    assert host.console_password_file.read_text() == "a coach's own password\n"
    assert config_mod.load(str(host.config)).web.password_file == host.console_password_file
    (tmp_path / "pw").write_text("short\n")
    assert run(_flags(tmp_path, sandbox, "--no-start", "--force", "--console-password-file",
                      str(tmp_path / "pw")), host) == 1


def test_refuses_to_replace_a_config_without_force(tmp_path: Path, sandbox: Sandbox) -> None:
    host = _host(tmp_path)
    host.config.parent.mkdir()
    host.config.write_text("# the admin's own\n")
    done = subprocess.run([sys.executable, "-m", "daemon", "setup", "--config", str(host.config),
                           "--non-interactive", "--watch", str(tmp_path), "--token-file", "-"],
                          input="t", capture_output=True, text=True, check=False)
    assert done.returncode == 2 and "--force" in done.stderr
    assert host.config.read_text() == "# the admin's own\n"
    assert run(_flags(tmp_path, sandbox, "--no-start", "--force"), host) == 0
    config_mod.load(str(host.config))
    # Issue 30, item 12: each replaced config is kept, none overwritten by a second --force.
    first = host.config.read_text()
    host.config.write_text(first + "# a hand edit\n")
    assert run(_flags(tmp_path, sandbox, "--no-start", "--force"), host) == 0
    kept = sorted(host.config.parent.glob("config.toml.old.*"))
    assert [k.read_text() for k in kept] == ["# the admin's own\n", first + "# a hand edit\n"]
    assert all(re.fullmatch(r"config\.toml\.old\.\d{8}-\d{6}(-\d+)?", k.name) for k in kept)


@pytest.mark.parametrize(("argv", "reason", "code"), [
    (["--non-interactive", "--token-file", "-"], "--watch", 2),
    (["--non-interactive", "--watch", "/srv/x"], "--token-file", 2),
    (["--non-interactive", "--watch", "/srv/x", "--token-file", "/nonexistent/t"],
     "cannot read the token file", 1),
    (["--non-interactive", "--watch", "/srv/x", "--token-file", "EMPTY"], "token is empty", 1),
    (["--non-interactive", "--watch", "/srv/x", "--token-file", "TOKEN", "--athlete", "jane"],
     "FOLDER=UUID", 2),
    (["--non-interactive", "--watch", "/srv/x", "--token-file", "TOKEN", "--athlete",
      f"jane={ATHLETE}", "--athlete", "jane=11111111-2222-3333-4444-555555555555"],
     "two different athletes", 2),
    # Issue 30: the whole machine, a watch folder inside another, the all-zero UUID.
    (["--non-interactive", "--watch", "/", "--token-file", "TOKEN"], "whole file system", 2),
    (["--non-interactive", "--watch", "/srv/x", "--watch", "/srv/x/y", "--token-file", "TOKEN"],
     "inside the other", 2),
    (["--non-interactive", "--watch", "/srv/x", "--token-file", "TOKEN", "--athlete",
      "jane=00000000-0000-0000-0000-000000000000"], "all-zero UUID", 2),
])
def test_refusals_write_nothing(tmp_path: Path, argv: list[str], reason: str, code: int,
                                capsys: pytest.CaptureFixture) -> None:
    # Exit codes (issue 30, item 13): 2 the command line does not hold, 1 nothing configured.
    (tmp_path / "EMPTY").write_text("\n")
    (tmp_path / "TOKEN").write_text("t0ken\n")
    host = _host(tmp_path)
    argv = [str(tmp_path / a) if a in ("EMPTY", "TOKEN") else a for a in argv]
    assert run(_args(*argv), host) == code
    assert reason in capsys.readouterr().err
    assert not host.config.exists() and not host.token_file.exists()


def test_a_missing_service_group_is_named(tmp_path: Path, capsys) -> None:
    host = Host(config=tmp_path / "c.toml", group="no-such-group-uplift",
                dropin_dir=tmp_path, systemd_creds=None, systemd_running=False)
    (tmp_path / "token").write_text("t0ken\n")
    assert run(_args("--non-interactive", "--watch", "/x", "--token-file",
                     str(tmp_path / "token")), host) == 1
    assert "install the package first" in capsys.readouterr().err


def test_configured_but_check_found_problems_exits_3(tmp_path: Path, sandbox: Sandbox,
                                                      capfd: pytest.CaptureFixture) -> None:
    """Issue 30, item 13: a script tells "configured, check found problems" (3) from "not
    configured" (1): here the API does not answer (a station still offline)."""
    host = _host(tmp_path)
    args = _flags(tmp_path, sandbox, "--no-start")
    args.api_url = "http://127.0.0.1:9/v1"
    assert run(args, host) == 3
    assert host.config.exists() and "check found problems" in capfd.readouterr().out


def test_check_that_cannot_run_as_the_service_user_is_one_line(
        tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    """Issue 30, item 11: a venv under /root cannot be run by the service user: one line, no
    traceback (this test's interpreter lives where `nobody` cannot run it, if run as root)."""
    if os.geteuid() != 0:
        pytest.skip("runs the check as another user: needs root")
    try:
        runnable = subprocess.run([sys.executable, "-c", "1"], user="nobody", cwd="/",
                                  check=False).returncode == 0
    except OSError:
        runnable = False
    if runnable:
        pytest.skip(f"{sys.executable} is runnable by nobody here")
    from daemon.setup.host import run_check

    assert run_check(tmp_path / "config.toml", "t0ken", "nobody") != 0
    out = capfd.readouterr().out
    assert "could not run as nobody" in out and "Traceback" not in out


def test_interview_asks_again_after_a_wrong_answer(tmp_path: Path, sandbox: Sandbox,
                                                   capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "w").mkdir()
    answers = iter([str(tmp_path / "w"), "",  # watch folders, then done
                    "jane", f"jane={ATHLETE}", "",  # a wrong athlete line, a right one, done
                    "", "sideways", "portrait", "", "putt"])  # capture defaults
    secrets = iter(["", "two words", sandbox.token,
                    "short", "the coach's console password"])  # too short, then a good one
    host = _host(tmp_path)
    assert run(_args("--api-url", sandbox.base_url, "--no-start"), host,
               ask=lambda _: next(answers), ask_secret=lambda _: next(secrets)) == 0
    out = capsys.readouterr().out
    assert "FOLDER=UUID" in out and "'sideways'" in out and "one line without spaces" in out
    cfg = config_mod.load(str(host.config))
    assert dict(cfg.athletes) == {"jane": ATHLETE}
    assert cfg.capture.camera_orientation == "portrait"
    assert dict(cfg.capture.movement) == {"activity": "golf", "movement": "putt"}
    assert host.token_file.read_text().strip() == sandbox.token
    assert "shorter than 8 characters" in out
    assert host.console_password_file.read_text() == "the coach's console password\n"
    assert cfg.web.password_file == host.console_password_file


def test_the_token_encrypted_with_systemd_creds(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    creds = shutil.which("systemd-creds")
    if creds is None:
        pytest.skip("systemd-creds is not installed")
    # Its own host key, so the machine's /var/lib/systemd/credential.secret is left alone.
    monkeypatch.setenv("SYSTEMD_CREDENTIAL_SECRET", str(tmp_path / "credential.secret"))
    host = _host(tmp_path, creds)
    host.token_file.parent.mkdir()
    host.token_file.write_text("old plain token\n")  # from an earlier setup without encryption
    said = store_token(host, "s3cret-token")
    assert "encrypted" in said
    sealed = host.encrypted_token_file.read_bytes()
    assert b"s3cret-token" not in sealed and host.encrypted_token_file.stat().st_mode & 0o77 == 0
    opened = subprocess.run([creds, "decrypt", "--name=uplift-api-token",
                             str(host.encrypted_token_file), "-"], capture_output=True,
                            check=True).stdout
    assert opened == b"s3cret-token"
    assert not host.token_file.exists()  # no plain copy left behind
    dropin = host.dropin.read_text()
    assert "LoadCredential=\n" in dropin  # resets the unit's plain one: only one credential
    assert f"LoadCredentialEncrypted=uplift-api-token:{host.encrypted_token_file}" in dropin
    # Without systemd-creds (or when it fails) the token goes back to a root-only file.
    said = store_token(Host(**{**host.__dict__, "systemd_creds": "/nonexistent/creds"}), "t2")
    assert "root only" in said and host.token_file.read_text() == "t2\n"
    assert not host.dropin.exists() and not host.encrypted_token_file.exists()


def test_setup_is_a_command_that_needs_no_config(tmp_path: Path, capsys) -> None:
    # Every other command loads the config first (and fails without one); setup writes it.
    code = cli.main(["setup", "--config", str(tmp_path / "c.toml"), "--non-interactive"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("uplift-capture setup:") and "config error" not in err


def test_without_systemd_the_printed_command_runs_with_the_config_alone(
        tmp_path: Path, sandbox: Sandbox, capfd: pytest.CaptureFixture) -> None:
    """Issue 30: where systemd does not run, nothing loads the unit's credential or makes its
    StateDirectory=: the config names the token file (the service's group reads it) and setup
    makes the state folder, so `uplift-capture run --config X` works as printed."""
    host = Host(**{**_host(tmp_path).__dict__, "state_dir": tmp_path / "state"})
    assert run(_flags(tmp_path, sandbox), host) == 0
    out = capfd.readouterr().out
    assert "systemd is not running here: start the daemon with `uplift-capture run " \
           f"--config {host.config}`" in out
    cfg = config_mod.load(str(host.config))
    assert cfg.api.token_file == host.token_file
    st = host.token_file.stat()
    assert (st.st_mode & 0o777, st.st_gid) == (0o640, os.getgid())
    assert f"token stored in {host.token_file}, readable by " in out and "[api] token_file" in out
    state = (tmp_path / "state").stat()
    assert state.st_mode & 0o777 == 0o700 and f"made the state folder {tmp_path / 'state'}" in out
    assert cfg.database_url == f"sqlite:///{tmp_path / 'state' / 'jobs.db'}"
    env = {k: v for k, v in os.environ.items()
           if k not in ("UPLIFT_API_TOKEN", "CREDENTIALS_DIRECTORY")}
    daemon = Proc(["run", "--config", str(host.config)], tmp_path / "daemon.log")
    daemon.env = env
    daemon.start()
    try:
        wait_for(lambda: daemon.has_event("daemon.ready"), 30, what="daemon.ready")
        daemon.signal(signal.SIGTERM)
        assert daemon.popen is not None and daemon.popen.wait(30) == 0
    finally:
        daemon.kill()


def test_who_can_read_a_file_is_what_its_owner_and_mode_say(tmp_path: Path) -> None:
    """Issue 30: run as another user, setup said "readable by root only" of a file that user
    owned."""
    import pwd

    from daemon.setup.host import readers

    path = tmp_path / "token"
    path.write_text("t\n")
    nobody = pwd.getpwnam("nobody")
    os.chown(path, nobody.pw_uid, nobody.pw_gid)
    path.chmod(0o600)
    assert readers(path) == "readable by nobody only"
    path.chmod(0o640)
    assert readers(path) == f"readable by nobody and the group {grp.getgrgid(nobody.pw_gid)[0]}"
