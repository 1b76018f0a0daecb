"""`uplift-capture athletes ...`: link a folder to an athlete without editing the config.

    athletes list [--json]                       every link (the config's and the table's)
    athletes add FOLDER ATHLETE_UUID [--name N]  link a folder; its waiting files go now
    athletes remove FOLDER                       unlink (uploaded files are not touched)
    athletes import FILE.csv                     folder,athlete_id,name; checked whole first
    athletes export                              the links made here, as that CSV

The config's [athletes] wins and is refused here, naming the file. The running daemon is poked
(as `retry` does) and, in a fleet, every node hears of the change from the database.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

from daemon.commands.terminal import echo
from daemon.config import Config
from daemon.config.hints import command
from daemon.jobs import directory
from daemon.jobs.athletes import AthleteTable, Changed, unknown_folders
from daemon.jobs.directory import Invalid, Link


def add_parser(sub: Any) -> None:
    p = sub.add_parser("athletes", help="link athlete folders to athletes (no config edit)")
    cmds = p.add_subparsers(dest="athletes_command", required=True)
    ls = cmds.add_parser("list", help="every folder linked to an athlete")
    ls.add_argument("--json", action="store_true")
    ls.add_argument("--config")
    add = cmds.add_parser("add", help="link FOLDER to the athlete ATHLETE_UUID")
    add.add_argument("folder")
    add.add_argument("athlete_id")
    add.add_argument("--name", help="the athlete's name, shown in status and the console")
    add.add_argument("--config")
    rm = cmds.add_parser("remove", help="unlink FOLDER (uploaded files are not touched)")
    rm.add_argument("folder")
    rm.add_argument("--config")
    imp = cmds.add_parser("import", help="link every folder of a CSV (folder,athlete_id,name)")
    imp.add_argument("file")
    imp.add_argument("--config")
    exp = cmds.add_parser("export", help="the links made here, as CSV on standard output")
    exp.add_argument("--config")


def who() -> tuple[str, str]:
    """Who set a link, and where: the person behind sudo if any, on this station."""
    user = os.environ.get("SUDO_USER") or _user()
    return user, f"command line on {socket.gethostname()}"


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


def run(cfg: Config, store: Any, args: argparse.Namespace, poke: Callable[[], None]) -> int:
    table = AthleteTable(store)
    cmd = args.athletes_command
    if cmd == "list":
        return _list(cfg, table, args.json)
    if cmd == "export":
        sys.stdout.write(directory.to_csv(table.links()))
        return 0
    try:
        if cmd == "add":
            return _add(cfg, store, table, directory.link(args.folder, args.athlete_id,
                                                          args.name), poke)
        if cmd == "remove":
            return _remove(cfg, table, directory.nfc(args.folder.strip()), poke)
        if cmd == "import":
            return _import(cfg, table, args.file, poke)
    except Invalid as exc:
        return _refuse(str(exc))
    return 2


def _refuse(reason: str, code: int = 2) -> int:
    echo(f"uplift-capture: {reason}", sys.stderr)
    return code


def _config_refusal(cfg: Config, folder: str) -> str:
    return (f"the folder '{folder}' is linked in the config file {cfg.source} ([athletes]); "
            f"change it there (then `systemctl reload uplift-capture`)")


def _list(cfg: Config, table: AthleteTable, as_json: bool) -> int:
    links = directory.merged(cfg.athletes, table.links())
    if as_json:
        print(json.dumps({"athletes": [x.public() for x in links]}, indent=2))
        return 0
    if not links:
        print("no athletes linked yet: "
              + command("athletes add FOLDER ATHLETE_UUID", cfg.source))
    for x in links:
        where = (f"from the config file {cfg.source}" if x.source == "config" else
                 f"set by {x.set_by} ({x.set_where}) {_when(x.set_at)}")
        name = f"  {x.name}" if x.name else ""
        echo(f"{x.folder}  {x.athlete_id}{name}  [{where}]")
    return 0


def _when(at: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(at)) if at else ""


def _add(cfg: Config, store: Any, table: AthleteTable, link: Link,
         poke: Callable[[], None]) -> int:
    if directory.from_config(link.folder, cfg.athletes):
        return _refuse(_config_refusal(cfg, link.folder))
    changed = table.put([link], *who(), time.time())
    waiting = sum(f["files"] for f in unknown_folders(store) if f["folder"] == link.folder)
    poke()
    name = f" ({link.name})" if link.name else ""
    missing = [str(w.path) for w in cfg.watches if not w.path.is_dir()]
    go = ("go now" if not missing else  # they are read from a folder that is not there
          f"go once they can be read (the watch folder {', '.join(missing)} is missing)")
    echo(f"linked '{link.folder}' to athlete {link.athlete_id}{name}"
         + (f"; its {waiting} waiting file(s) {go}" if waiting else ""))
    _report(changed)
    return 0


def _remove(cfg: Config, table: AthleteTable, folder: str, poke: Callable[[], None]) -> int:
    if directory.from_config(folder, cfg.athletes):
        return _refuse(_config_refusal(cfg, folder))
    changed = table.remove(folder, time.time())
    if changed is None:
        return _refuse(f"the folder '{folder}' is not linked "
                       f"({command('athletes list', cfg.source)} shows the links)", 1)
    poke()
    echo(f"unlinked '{folder}'; files already uploaded are not touched, new ones wait for an "
          f"athlete")
    _report(changed, "go back to waiting for an athlete")
    return 0


def _import(cfg: Config, table: AthleteTable, file: str, poke: Callable[[], None]) -> int:
    try:
        with open(file, encoding="utf-8", newline="") as f:
            text = f.read()
    except UnicodeDecodeError as exc:
        return _refuse(f"{file} is not UTF-8 text ({exc.reason} at byte {exc.start}); save it "
                       f"as CSV UTF-8")
    except OSError as exc:
        return _refuse(f"cannot read {file}: {exc.strerror}", 1)
    rows = directory.parse_csv(text)  # Invalid names the line
    for line, link in rows:
        if directory.from_config(link.folder, cfg.athletes):
            return _refuse(f"{file} line {line}: {_config_refusal(cfg, link.folder)}")
    changed = table.put([link for _, link in rows], *who(), time.time())
    poke()
    echo(f"imported {len(rows)} athlete link(s) from {file}")
    _report(changed)
    return 0


def _report(changed: Changed, requeued: str = "take the new link") -> None:
    if changed.requeued:
        print(f"{len(changed.requeued)} queued file(s) {requeued}")
    for job_id, athlete in changed.kept:
        echo(f"job {job_id} is already being uploaded; it keeps athlete {athlete}")


__all__ = ["add_parser", "run", "who"]
