"""`uplift-capture check`: config, folders, database, what the running daemon reports, then the
network path to the API and the storage (`--sandbox`: to the built-in sandbox API, as
`run --sandbox` uploads); one line per finding, exit 0 only when all hold."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from daemon import config as config_mod
from daemon.commands.terminal import echo
from daemon.config import ConfigError
from daemon.jobs import schema


def used_before(cfg: config_mod.Config) -> bool:
    """A daemon ran on this SQLite database (its lock file is there)."""
    from daemon.jobs.engine import sqlite_path

    db = sqlite_path(cfg.database_url)
    return db is not None and db.with_name(db.name + ".lock").exists()


def runtime_of(cfg: config_mod.Config) -> dict[str, Any]:
    from daemon.jobs.engine import sqlite_path
    from daemon.service import runtime

    return runtime.read(runtime.state_path(sqlite_path(cfg.database_url)))


class _Skip(Exception):
    """Nothing more to check for this item."""


def run(cfg: config_mod.Config, offline: bool = False, sandbox: bool = False) -> int:
    """One line per finding; exit 0 only when all hold. `sandbox`: the network walk goes to the
    built-in sandbox API, started here for it, with its token (what `run --sandbox` does)."""
    ok = True

    def say(good: bool, text: str) -> None:
        nonlocal ok
        ok = ok and good
        echo(f"{'ok  ' if good else 'FAIL'} {text}")  # paths, server messages

    say(True, f"config {cfg.source} is valid")
    writes = cfg.upload.after_upload != "keep"
    for watch in cfg.watches:
        if not watch.path.is_dir():
            say(False, f"watch folder {watch.path} does not exist (the daemon waits for it)")
            continue
        readable = os.access(watch.path, os.R_OK | os.X_OK)
        say(readable, f"watch folder {watch.path} is "
            f"{'readable' if readable else 'not readable by this user'}")
        if writes:
            writable = os.access(watch.path, os.W_OK)
            say(writable, f"watch folder {watch.path} is "
                f"{'writable' if writable else 'not writable by this user'} (after_upload = "
                f"{cfg.upload.after_upload!r} needs to remove files)")
    if cfg.upload.archive_dir is not None and cfg.upload.after_upload == "move":
        archive = cfg.upload.archive_dir
        existing = next(p for p in (archive, *archive.parents) if p.exists())
        can = os.access(existing, os.W_OK | os.X_OK)
        say(can, f"archive folder {archive} is {'writable' if can else 'not writable'}")
    from daemon import status as status_mod
    from daemon.jobs import engine as engine_mod
    from daemon.jobs.store import Store

    notices: dict[str, Any] = {}
    storage_url = None
    db = engine_mod.sqlite_path(cfg.database_url)
    try:
        if db is not None and not db.exists() and not used_before(cfg):
            problem = engine_mod.check_writable(cfg.database_url)  # as this user: run it so
            say(problem is None, problem or f"database {db} does not exist yet; the daemon "
                                            f"creates it when it starts")
            raise _Skip
        store = Store.open(cfg.database_url, migrate=False, create=False)
        try:
            storage_url = store.last_upload_url()
            problem = engine_mod.check_writable(cfg.database_url) or schema.lag(store.engine)
            say(problem is None, problem or "database opens, is writable and is up to date")
            notices = {**store.notices(), **status_mod.live_attention(runtime_of(cfg))}
        finally:
            store.close()
    except _Skip:
        pass
    except BrokenPipeError:  # the reader of our output left: main() ends quietly
        raise
    except Exception as exc:
        say(False, f"database cannot be opened: {exc}")
    for name in ("watch_folder", "database"):
        if name in notices:
            say(False, f"the running daemon reports: {notices[name]['message']}")
    if offline:
        return 0 if ok else 1
    with contextlib.ExitStack() as stack:
        try:
            if sandbox:
                cfg, token = _check_sandbox(cfg, stack)
                storage_url = cfg.api.base_url  # the sandbox's storage is the sandbox itself
                say(True, f"sandbox API started at {cfg.api.base_url} (no token needed)")
            else:
                token = config_mod.read_token(cfg)
        except ConfigError as exc:
            say(False, str(exc))
        else:
            from daemon.net import diagnose

            findings = diagnose.walk(cfg.api.base_url, token, cfg.api.proxy, cfg.api.ca_file,
                                     storage_url, timeout=cfg.api.connect_timeout)
            for good, text in findings:
                say(good, text)
            if all(good for good, _ in findings) and "credentials" in notices:
                say(False, "the running daemon has its uploads paused because the API rejected "
                           "its token; it re-reads the token within seconds (or run "
                           "`systemctl reload uplift-capture`)")
    return 0 if ok else 1


def _check_sandbox(cfg: config_mod.Config, stack: contextlib.ExitStack
                   ) -> tuple[config_mod.Config, str]:
    """The built-in sandbox API for `check --sandbox`, in a throw-away folder (what it would
    receive is nobody's), stopped when the stack closes; the config pointed at it, its token."""
    import tempfile

    from daemon.sandbox import server

    srv = server.start(Path(stack.enter_context(tempfile.TemporaryDirectory())))
    stack.callback(srv.server_close)
    stack.callback(srv.shutdown)
    return config_mod.with_base_url(cfg, srv.base_url), srv.state.token
