"""The `uplift-capture` command line."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import DBAPIError, OperationalError

from daemon import __version__, setup, timeutil
from daemon import config as config_mod
from daemon.commands import athletes as athletescmd
from daemon.commands import check as checkcmd
from daemon.commands import roots as rootscmd
from daemon.commands import sandbox as sandboxcmd
from daemon.commands.check import runtime_of, used_before
from daemon.commands.terminal import echo
from daemon.config import ConfigError
from daemon.jobs import schema
from daemon.jobs.engine import SCHEMA_HEAD
from daemon.jobs.models import MAX_ID, parse_job_id
from daemon.jobs.store import DatabaseUnavailable

if TYPE_CHECKING:
    from daemon.jobs.store import Store


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="uplift-capture",
                                description="Upload finished .mov captures to Uplift.")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the daemon in the foreground")
    run.add_argument("--config")
    run.add_argument("--sandbox", action="store_true",
                     help="start the built-in sandbox API in-process (no credentials needed)")

    status = sub.add_parser("status", help="what the daemon is doing")
    status.add_argument("--config")
    status.add_argument("--json", action="store_true")
    status.add_argument("--all", action="store_true",
                        help="list every job (streamed), not only the newest of each state")
    status.add_argument("--node", metavar="NAME",
                        help="fleet mode: only the jobs this station holds, uploaded or waits for")

    retry = sub.add_parser("retry", help="put failed jobs back in the queue")
    retry.add_argument("--config")
    retry.add_argument("job_ids", nargs="*")
    retry.add_argument("--failed", action="store_true", help="every failed job")
    retry.add_argument("--force", action="store_true",
                       help="upload even what the movie check refused (e.g. a file a camera "
                            "wrote in an unusual way)")

    check = sub.add_parser("check", help="validate config, folders, database and credentials")
    check.add_argument("--config")
    check.add_argument("--sandbox", action="store_true",
                       help="check against the built-in sandbox API, as `run --sandbox` uploads "
                            "(no token needed)")
    check.add_argument("--offline", action="store_true",
                       help="skip the API (for container health checks)")

    pause = sub.add_parser("pause", help="stop starting uploads (stored: survives restarts)")
    pause.add_argument("--config")
    when = pause.add_mutually_exclusive_group()
    when.add_argument("--until", metavar="HH:MM", help="resume by itself at this time of day")
    when.add_argument("--for", dest="duration", metavar="DURATION",
                      help="resume by itself after this long, e.g. 90m, 2h, 1h30m")
    pause.add_argument("--now", action="store_true",
                       help="also put running uploads back in the queue (else they finish)")
    resume = sub.add_parser("resume", help="start uploading again")
    resume.add_argument("--config")
    nt = sub.add_parser("notify-test", help="send a test message to every [notify] URL")
    nt.add_argument("--config")

    nodes = sub.add_parser("nodes", help="fleet mode: the stations")
    nodes_sub = nodes.add_subparsers(dest="nodes_command", required=True)
    forget = nodes_sub.add_parser("forget", help="drop a retired station from the list")
    forget.add_argument("name")
    forget.add_argument("--config")

    db = sub.add_parser("db", help="database maintenance")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    up = db_sub.add_parser("upgrade", help="apply migrations")
    up.add_argument("--config")

    rootscmd.add_parser(sub)
    athletescmd.add_parser(sub)
    setup.add_parser(sub)

    sandboxcmd.add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        try:
            return _main(argv)
        finally:  # here, where a closed pipe is caught, not at the interpreter's exit
            sys.stdout.flush()
    except BrokenPipeError:
        # A reader that stopped early (`athletes list | head -1`) is no error: stdout to
        # /dev/null, so that the interpreter's own flush at exit does not complain either.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _main(argv: list[str] | None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _dispatch(args)
    except ConfigError as exc:
        echo(f"uplift-capture: config error: {exc}", sys.stderr)
        return 2
    except DatabaseUnavailable as exc:
        echo(f"uplift-capture: {exc}", sys.stderr)
        return 1
    except OperationalError as exc:  # e.g. a read-only or full disk under the job table
        echo(f"uplift-capture: the job database cannot be used: {exc.orig}", sys.stderr)
        return 1
    except OSError as exc:
        if exc.filename is None:  # not a path's (e.g. a socket's): not ours to word
            raise
        # A folder or file that cannot be made, read or written (e.g. [sandbox] data_dir
        # under /etc): the path and why, in one line.
        print(f"uplift-capture: cannot use {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "sandbox":
        return sandboxcmd.run(args)
    if args.command == "setup":  # writes the config: it cannot load one first
        return setup.run(args)
    from daemon import logs

    cfg = config_mod.load(args.config)
    if args.command == "run":
        from daemon.service.lifecycle import Service

        logs.setup(cfg.log_level)
        return Service(cfg, sandbox=args.sandbox).run()
    logs.for_commands()
    if args.command == "check":
        return checkcmd.run(cfg, offline=args.offline, sandbox=args.sandbox)
    if args.command == "notify-test":
        return _notify_test(cfg)
    from daemon.jobs.store import Store

    if args.command == "db":
        from daemon.jobs.engine import acquire_instance_lock

        lock = acquire_instance_lock(cfg.database_url)  # SQLite: not under a running daemon
        try:
            Store.open(cfg.database_url, migrate=True).close()
        finally:
            if lock is not None:
                lock.close()
        print("database is up to date")
        return 0
    # `roots` records watch-folder identities (the 0004 table), `athletes` links (0007);
    # `retry` writes jobs as this code knows them: not while the service is still upgrading
    # the table (or has not yet), as `status` says. The others read what is there.
    store = open_store(cfg, need={"roots": "0004", "athletes": "0007",
                                  "retry": SCHEMA_HEAD}.get(args.command))
    try:
        if args.command == "status":
            from daemon import status
            from daemon.work.gate import Gate

            _, why = Gate(store, cfg.upload.hours, config=str(cfg.source)).check()
            if args.all:
                status.stream(store, sys.stdout, args.json, runtime=runtime_of(cfg),
                              gate_reason=why, node=args.node,
                              lease=cfg.node.lease_seconds, athletes=cfg.athletes,
                              config=str(cfg.source))
                return 0
            data = status.collect(store, runtime=runtime_of(cfg), gate_reason=why,
                                  node=args.node, lease=cfg.node.lease_seconds,
                                  athletes=cfg.athletes)
            print(json.dumps(data, indent=2) if args.json
                  else status.render(data, config=str(cfg.source)))
            return 0
        if args.command == "retry":
            if not args.failed and not args.job_ids:
                print("uplift-capture: name job ids, or use --failed", file=sys.stderr)
                return 2
            ids = [n for n in map(parse_job_id, args.job_ids) if n is not None]
            if bad := next((t for t in args.job_ids if parse_job_id(t) is None), None):
                echo(f"uplift-capture: {bad[:40]} is not a job id (1 to {MAX_ID})", sys.stderr)
                return 2
            done = store.retry(None if args.failed else ids, time.time(), args.force)
            print(f"requeued {len(done)} job(s): {' '.join(map(str, done))}" if done
                  else "nothing to retry")
            if done:
                _poke_daemon(cfg)
            return 0
        if args.command in ("pause", "resume"):
            return _pause(cfg, store, args)
        if args.command == "roots":
            code = rootscmd.run(cfg, store, args)
            _poke_daemon(cfg)
            return code
        if args.command == "athletes":
            return athletescmd.run(cfg, store, args, lambda: _poke_daemon(cfg))
        if args.command == "nodes":
            from daemon.jobs import fleet

            echo(fleet.forget(store, args.name, cfg.node.lease_seconds))
            return 0
    except DBAPIError:
        schema.explain(store.engine)  # a column or table this code reads is not there yet?
        raise
    finally:
        store.close()
    return 2


def open_store(cfg: config_mod.Config, need: str | None = None) -> Store:
    """The job table for every command but `run` and `db upgrade`: as it is, never migrated
    (a daemon of the previous version may be running on it). `need`: the schema revision the
    command cannot do without (e.g. "0004"); an older table is refused in one line."""
    from daemon.jobs.store import Store

    # A database that was never made is made (empty) here; one a daemon used and that is gone
    # is an error, so that only a person decides to start afresh.
    return Store.open(cfg.database_url, migrate=False, create=not used_before(cfg),
                      need=need)


def _pause(cfg: config_mod.Config, store: Any, args: argparse.Namespace) -> int:
    from daemon.service import control

    now = time.time()
    if args.command == "resume":
        control.resume(store, now)
        print("uploads resume")
    else:
        try:
            until = timeutil.until(args.until, args.duration, now)
        except ValueError as exc:
            print(f"uplift-capture: {exc}", file=sys.stderr)
            return 2
        print(control.pause(store, now, until, args.now))
    _poke_daemon(cfg)
    return 0


def _notify_test(cfg: config_mod.Config) -> int:
    from daemon import logs
    from daemon.alerts import notifier as alerts

    if not cfg.notify.urls:
        echo(f"no [notify] urls in {cfg.source}")
        return 1
    results = alerts.Notifier(cfg.notify.urls, 0, redact=logs.scrub).test()
    for url, good, detail in results:
        echo(f"{'ok  ' if good else 'FAIL'} {url}" + (f": {detail}" if detail else ""))
    return 0 if all(good for _, good, _ in results) else 1


def _poke_daemon(cfg: config_mod.Config) -> None:
    """Tell the running daemon (SIGUSR1) that the job table changed, so a retried job goes
    now rather than at its next poll. Best effort: the poll picks it up anyway."""
    import signal

    pid = runtime_of(cfg).get("pid")
    if isinstance(pid, int):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGUSR1)


