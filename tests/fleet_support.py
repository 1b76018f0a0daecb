"""Helpers of the fleet tests: stations on one PostgreSQL, sharing a folder `nas`."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from support import cli, set_config_key, undone_after, write_config

LEASE = 3.0  # seconds: short, so a takeover comes within the tests' waits


def node_config(tmp: Path, name: str, nas: Path | None, db_url: str, base_url: str, *,
                upload: str, local: Path | None = None, extra: str = "") -> Path:
    """Station `name`'s config, tmp/<name>.toml: its jobs in the fleet database `db_url`, its
    own folder `local` (by default a new tmp/local-<name>) and, unless `nas` is None, the shared
    folder `nas` (named "nas", polled). `upload` and `extra` go to write_config."""
    if local is None:
        local = tmp / f"local-{name}"
        local.mkdir(parents=True, exist_ok=True)
    share = (f'[[watch]]\npath = "{nas}"\nshared = true\nname = "nas"\npoll = true\n'
             if nas is not None else "")
    cfg = write_config(
        tmp / f"{name}.toml", watch=local, db=tmp / "unused.db", base_url=base_url,
        settle=0.3, upload=upload,
        extra=f'[node]\nname = "{name}"\nlease_seconds = {LEASE}\n{share}{extra}')
    return set_config_key(cfg, "database", "url", json.dumps(db_url))


def fleet_status(config: Path) -> dict[str, Any]:
    """`status --json --all`: every station's jobs, and the stations."""
    out = cli("status", "--json", "--all", "--config", str(config))
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@contextlib.contextmanager
def bind_mounts(source: Path, targets: list[Path]) -> Iterator[list[Path]]:
    """`source` bind-mounted at each of `targets` (made if missing), unmounted at the end; the
    test is skipped where it cannot mount."""
    with contextlib.ExitStack() as mounted:
        for t in targets:
            t.mkdir(parents=True, exist_ok=True)
            mounted.enter_context(undone_after(["mount", "--bind", str(source), str(t)],
                                               ["umount", "-l", str(t)],
                                               "cannot bind-mount here"))
        yield targets
