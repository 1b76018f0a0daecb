"""Per-folder settings: an optional `capture.toml` in an athlete or session folder overrides the
capture settings (camera and movement) for the files in it. Same keys as [capture]."""

from __future__ import annotations

import os
import threading
import tomllib
from pathlib import Path, PurePath

from daemon.config import CaptureSettings, ConfigError, WatchRoot, capture_overrides

SIDECAR = "capture.toml"
_cache: dict[str, tuple[int, dict | ConfigError]] = {}
_lock = threading.Lock()


def _read(path: Path) -> dict | None:
    """The sidecar's table, or None when there is none; cached until its mtime changes."""
    try:
        mtime = os.stat(path).st_mtime_ns
    except FileNotFoundError:
        return None
    with _lock:
        hit = _cache.get(str(path))
    if hit is None or hit[0] != mtime:
        try:
            value: dict | ConfigError = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            value = ConfigError(f"{path}: not valid TOML: {exc}")
        except OSError as exc:
            value = ConfigError(f"{path}: cannot be read: {exc.strerror}")
        with _lock:
            _cache[str(path)] = hit = (mtime, value)
    if isinstance(hit[1], ConfigError):
        raise hit[1]
    return hit[1]


def settings_for(root: WatchRoot, rel: PurePath) -> CaptureSettings:
    """The root's settings, then the athlete folder's sidecar, then the session folder's.
    Raises ConfigError (naming the sidecar) when one is invalid."""
    settings = root.capture
    folders = rel.parts[:-1][:2]  # <athlete>, <athlete>/<session>
    for depth in range(1, len(folders) + 1):
        path = root.path.joinpath(*folders[:depth]) / SIDECAR
        data = _read(path)
        if data is not None:
            settings = capture_overrides(data, settings, path)
    return settings
