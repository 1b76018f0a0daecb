"""Per-folder settings: an optional `capture.toml` in an athlete or session folder overrides the
capture settings (camera and movement) for the files in it. Same keys as [capture]."""

from __future__ import annotations

import os
import threading
import tomllib
from pathlib import Path, PurePath
from typing import Any

from daemon.config import CaptureSettings, ConfigError, WatchRoot, capture_overrides
from daemon.watch.regular import not_regular, open_regular

SIDECAR = "capture.toml"
MAX_SIDECAR = 1024 * 1024  # a few lines of TOML; read whole, so bounded
_cache: dict[str, tuple[int, dict[str, Any] | ConfigError]] = {}
_lock = threading.Lock()


def _read(path: Path) -> dict[str, Any] | None:
    """The sidecar's table, or None when there is none; cached until its mtime changes."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read: {exc.strerror}") from None
    # A FIFO named capture.toml would block the settle thread for ever: never opened.
    if (why := not_regular(st.st_mode)) is not None:
        raise ConfigError(f"{path}: {why}; it must be a TOML file")
    if st.st_size > MAX_SIDECAR:
        raise ConfigError(f"{path}: {st.st_size} bytes is too large for a settings file")
    mtime = st.st_mtime_ns
    with _lock:
        hit = _cache.get(str(path))
    if hit is None or hit[0] != mtime:
        try:
            with open_regular(path) as f:
                text = f.read(MAX_SIDECAR + 1).decode("utf-8")
            value: dict[str, Any] | ConfigError = tomllib.loads(text)
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
