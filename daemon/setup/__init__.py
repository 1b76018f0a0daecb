"""`uplift-capture setup`: the few questions that matter, then a configured, running service.

Writes the config (0640 root:uplift-capture), keeps the API token as the unit's credential,
runs `check`, enables and starts the unit where systemd runs, and prints the console URL."""

from __future__ import annotations

import argparse
import getpass
import secrets
import sys
import time
import tomllib
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from daemon import config as config_mod
from daemon.config import ConfigError
from daemon.config.parse import watch_overlap
from daemon.setup import answers as ans
from daemon.setup.host import (
    SERVICE,
    SERVICE_USER,
    Host,
    SetupError,
    UsageError,
    keep_old,
    make_state_dir,
    readers,
    store_token,
    write_file,
)

# Exit codes, for scripts (docs/install.md): configured and checked; nothing configured; the
# command line does not hold; configured, but check (or starting the service) found problems.
OK, NOT_CONFIGURED, USAGE, CONFIGURED_WITH_PROBLEMS = 0, 1, 2, 3

Ask = Callable[[str], str]


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("setup", help="configure this station and start the service",
                       description="Asks for the watch folders, athletes, capture defaults and "
                                   "the API token; writes the config and starts the service.")
    p.add_argument("--config", help=f"where to write it (default {config_mod.DEFAULT_CONFIG_PATH})")
    p.add_argument("--non-interactive", action="store_true",
                   help="ask nothing: --watch and --token-file are required")
    p.add_argument("--watch", action="append", default=[], metavar="PATH",
                   help="a folder to watch (repeat for more)")
    p.add_argument("--athlete", action="append", default=[], metavar="FOLDER=UUID",
                   help="an athlete folder and its athlete UUID (repeat for more)")
    p.add_argument("--token-file", metavar="FILE", help="read the API token from FILE (- = stdin)")
    p.add_argument("--console-password-file", metavar="FILE",
                   help="the console's password, from FILE's first line (- = stdin); "
                        "without it, setup asks or (--non-interactive) makes one up")
    p.add_argument("--api-url", default=ans.DEFAULT_API_URL, help="the Uplift API")
    p.add_argument("--camera-setup", default="single.front_on", metavar="SELECTION")
    p.add_argument("--orientation", default="auto", choices=config_mod.ORIENTATIONS)
    p.add_argument("--activity", default="golf")
    p.add_argument("--movement", default="full_swing")
    p.add_argument("--no-start", action="store_true", help="write everything, start nothing")
    p.add_argument("--force", action="store_true", help="replace an existing config")


def run(args: argparse.Namespace, host: Host | None = None, ask: Ask = input,
        ask_secret: Ask = getpass.getpass) -> int:
    path = config_mod.config_path(args.config)
    host = host or Host.default(path)
    try:
        return _run(args, host, ask, ask_secret)
    except SetupError as exc:
        print(f"uplift-capture setup: {exc}", file=sys.stderr)
        return USAGE if isinstance(exc, UsageError) else NOT_CONFIGURED
    except (EOFError, KeyboardInterrupt):
        print("\nuplift-capture setup: stopped; nothing was written", file=sys.stderr)
        return 130


def _run(args: argparse.Namespace, host: Host, ask: Ask, ask_secret: Ask) -> int:
    if host.config.exists() and not args.force:
        raise UsageError(f"{host.config} exists; pass --force to replace it "
                         f"(the old one is kept as {host.config.name}.old.<date-time>)")
    if args.non_interactive:  # the command line first: a usage error is exit 2
        answers, token = _from_flags(args)
        gid = host.gid()
    else:  # before any question: nothing asked in vain
        gid = host.gid()
        answers, token = _interview(args, ask, ask_secret)
    password, made_up = _console_password(args, ask_secret)
    try:  # exactly what the daemon will read (but the password file, not written yet)
        config_mod.parse(tomllib.loads(ans.render(answers, "")), host.config.resolve())
    except ConfigError as exc:
        raise SetupError(f"these answers make an invalid config: {exc}") from None
    # Where systemd runs, it loads the token as the unit's credential and makes its state
    # folder; elsewhere (a container, a chroot) `run` as the printed command says must work
    # with this config alone: the token file named in it, the state folder made here.
    standalone = not host.systemd_running and not args.no_start
    answers = replace(answers, console_password_file=host.console_password_file,
                      token_file=host.token_file if standalone else None,
                      database_url=f"sqlite:///{host.state_dir / 'jobs.db'}")
    text = ans.render(answers, time.strftime("%Y-%m-%d"))
    if host.config.exists():
        kept = keep_old(host.config, time.strftime("%Y%m%d-%H%M%S"))
        print(f"kept the config it replaces as {kept}")
    # The console can re-link athletes and retry uploads: never without a password.
    write_file(host.console_password_file, password + "\n", 0o640, gid)
    write_file(host.config, text, 0o640, gid)
    print(f"wrote {host.config}")
    print(f"the console's password {'was made up and ' if made_up else ''}is in "
          f"{host.console_password_file} ({readers(host.console_password_file)})")
    cfg = config_mod.parse(tomllib.loads(text), host.config.resolve())
    print(store_token(host, token, standalone, gid))
    made = make_state_dir(host) if standalone else None
    if made:
        print(made)
    from daemon.setup.host import run_check

    print(f"checking (`uplift-capture check --config {host.config}`):", flush=True)
    checked = run_check(host.config, token, SERVICE_USER if host.group == SERVICE_USER else None)
    if checked != 0:
        print("check found problems (above). The service waits for missing folders and "
              "retries the API, so it starts anyway; fix them and it carries on.")
    if args.no_start:
        print(f"not started (--no-start): systemctl enable --now {SERVICE}")
    elif not host.systemd_running:
        print(f"systemd is not running here: start the daemon with `uplift-capture run "
              f"--config {host.config}` (as the user {SERVICE_USER})")
    else:
        from daemon.setup.host import start_service

        problems = start_service(host)
        for line in problems:
            print(f"uplift-capture setup: {line}", file=sys.stderr)
        if problems:
            return CONFIGURED_WITH_PROBLEMS
        print(f"{SERVICE} is enabled and started")
    if cfg.web.listen:
        print(f"console: http://{cfg.web.listen}/")
    return OK if checked == 0 else CONFIGURED_WITH_PROBLEMS


def _console_password(args: argparse.Namespace, ask_secret: Ask) -> tuple[str, bool]:
    """(password, made up here): from --console-password-file, asked, or made up."""
    try:
        if args.console_password_file:
            return ans.parse_console_password(
                _read_secret_file(args.console_password_file, "console password")), False
    except ValueError as exc:
        raise SetupError(str(exc)) from None
    if not args.non_interactive:
        while True:
            typed = ask_secret("\nConsole password (not shown; Enter makes one up): ")
            if not typed.strip():
                break
            if _valid(ans.parse_console_password, typed):
                return ans.parse_console_password(typed), False
    return secrets.token_urlsafe(15), True


def _from_flags(args: argparse.Namespace) -> tuple[ans.Answers, str]:
    if not args.watch:
        raise UsageError("--non-interactive needs at least one --watch PATH")
    if not args.token_file:
        raise UsageError("--non-interactive needs --token-file FILE (or - for stdin)")
    try:
        answers = _answers(args, args.watch, args.athlete)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    try:
        return answers, ans.parse_token(_read_token_file(args.token_file))
    except ValueError as exc:
        raise SetupError(str(exc)) from None


def _read_token_file(name: str) -> str:
    return _read_secret_file(name, "token")


def _read_secret_file(name: str, what: str) -> str:
    if name == "-":
        return sys.stdin.read()
    try:
        return Path(name).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise SetupError(f"cannot read the {what} file {name}: "
                         f"{getattr(exc, 'strerror', None) or exc}") from None


def _answers(args: argparse.Namespace, watches: list[str],
             athletes: list[str]) -> ans.Answers:
    """Raises ValueError naming the first answer that does not hold."""
    cwd = Path.cwd()
    paths = tuple(dict.fromkeys(ans.parse_watch(w, cwd) for w in watches))
    for i, path in enumerate(paths):  # as the config will refuse them, but as a usage error
        problem = watch_overlap(path, list(paths[:i]))
        if problem:
            raise ValueError(problem)
    linked: dict[str, str] = {}
    for text in athletes:
        folder, athlete = ans.parse_athlete(text)
        if linked.get(folder, athlete) != athlete:
            raise ValueError(f"the folder {folder!r} is given two different athletes")
        linked[folder] = athlete
    return ans.Answers(
        watches=paths, athletes=tuple(linked.items()),
        camera_setup_selection=ans.parse_word(args.camera_setup, "the camera setup"),
        camera_orientation=ans.parse_orientation(args.orientation),
        movement=(("activity", ans.parse_word(args.activity, "the activity")),
                  ("movement", ans.parse_word(args.movement, "the movement"))),
        api_url=ans.parse_word(args.api_url, "the API URL"))


def _interview(args: argparse.Namespace, ask: Ask,
               ask_secret: Ask) -> tuple[ans.Answers, str]:
    print("uplift-capture setup: a few questions (Ctrl-C stops, nothing is written before the "
          "end).")
    cwd = Path.cwd()
    watches = list(args.watch)
    print("\nWatch folders: where the capture software saves the .mov files, one per line.")
    while True:
        line = ask(f"  watch folder{' (empty line: done)' if watches else ''}: ").strip()
        if not line:
            if watches:
                break
            print("    at least one folder, please")
            continue
        if _valid(ans.parse_watch, line, cwd):
            watches.append(line)
    athletes = list(args.athlete)
    print("\nAthlete folders: a folder inside a watch folder and the athlete's UUID, as "
          "FOLDER=UUID.\nAn empty line skips this: the console links new folders later.")
    while line := ask("  FOLDER=UUID (empty line: done): ").strip():
        if _valid(ans.parse_athlete, line):
            athletes.append(line)
    print("\nCapture defaults (Enter keeps the value in brackets):")
    for name, label in (("camera_setup", "camera setup"),
                        ("orientation", "camera orientation (auto|portrait|landscape)"),
                        ("activity", "activity"), ("movement", "movement")):
        current = getattr(args, name)
        while True:
            value = ask(f"  {label} [{current}]: ").strip() or current
            if (_valid(ans.parse_orientation, value) if name == "orientation"
                    else _valid(ans.parse_word, value, label)):
                break
        setattr(args, name, value)
    token = ""
    while not token:
        typed = ask_secret("\nAPI token (not shown as you type): ")
        token = ans.parse_token(typed) if _valid(ans.parse_token, typed) else ""
    try:
        return _answers(args, watches, athletes), token
    except ValueError as exc:
        raise SetupError(str(exc)) from None


def _valid(parse: Callable[..., object], *args: object) -> bool:
    """Prints why an answer does not hold (the question is asked again)."""
    try:
        parse(*args)
    except ValueError as exc:
        print(f"    {exc}")
        return False
    return True
