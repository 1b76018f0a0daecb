"""`uplift-capture roots accept PATH`: a person says a watch folder that changed (moved to new
storage, a share mounted from elsewhere) is the right one; its waiting files go from there."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from daemon.commands.terminal import echo
from daemon.config import Config, WatchRoot
from daemon.station import fsprobe


def add_parser(sub: Any) -> None:
    roots = sub.add_parser("roots", help="watch folders that are not there (unmounted?)")
    roots_sub = roots.add_subparsers(dest="roots_command", required=True)
    accept = roots_sub.add_parser(
        "accept", help="take the folder now at PATH as that watch folder (moved storage)")
    accept.add_argument("path")
    accept.add_argument("--config")


def run(cfg: Config, store: Any, args: argparse.Namespace) -> int:
    from daemon.jobs.shares import shared_names
    from daemon.watch.roots import Roots

    root = _watch_of(cfg, args.path)
    if root is None:
        echo(f"uplift-capture: {args.path} is not a watch folder of {cfg.source} (watched: "
              f"{', '.join(str(w.path) for w in cfg.watches)})")
        return 2
    if fsprobe.kind(str(root.path)) is fsprobe.Kind.NOT_ANSWERING:
        echo(f"uplift-capture: {root.path} is not answering (a hung network share?): accept "
             f"it once it answers")
        return 1
    store.set_node(cfg.node.name, shared_names(cfg.watches))
    identity = Roots(store, [root]).accept(root)
    if identity is None or not Path(root.path).is_dir():
        echo(f"uplift-capture: {root.path} is not there: mount it first")
        return 1
    echo(f"accepted {root.path} as the watch folder (device {identity[0]}, inode "
          f"{identity[1]}); its waiting files go from there")
    return 0


def _watch_of(cfg: Config, path: str) -> WatchRoot | None:
    """The watch folder `path` names: as written first, then resolved (a symlinked spelling),
    each resolution bounded in time, since any watch folder may be a share that hangs."""
    want = os.path.abspath(path)
    found = next((w for w in cfg.watches if os.path.abspath(w.path) == want), None)
    if found is not None:
        return found
    real = fsprobe.bounded("realpath", want, os.path.realpath)
    return next((w for w in cfg.watches if real is not None and
                 fsprobe.bounded("realpath", str(w.path), os.path.realpath) == real), None)


__all__ = ["add_parser", "run"]
