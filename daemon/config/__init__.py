"""Load and validate the TOML config into typed, frozen objects: the settings in settings.py,
one parser per section in parse.py, the table reader and value checks in read.py.

Every error names the file and the key, so an admin can fix it without reading code.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import replace
from pathlib import Path

from daemon.config.parse import capture_overrides, parse
from daemon.config.read import ConfigError
from daemon.config.settings import (
    AFTER_UPLOAD,
    DEFAULT_CONFIG_PATH,
    NODE_NAME_MAX,
    ORIENTATIONS,
    TOKEN_CREDENTIAL,
    ApiSettings,
    CaptureSettings,
    Config,
    NodeSettings,
    NotifySettings,
    SandboxSettings,
    StationSettings,
    UploadSettings,
    WatchingSettings,
    WatchRoot,
    WebSettings,
)

__all__ = ["AFTER_UPLOAD", "DEFAULT_CONFIG_PATH", "NODE_NAME_MAX", "ORIENTATIONS",
           "TOKEN_CREDENTIAL", "ApiSettings", "CaptureSettings", "Config", "ConfigError",
           "NodeSettings", "NotifySettings", "SandboxSettings", "StationSettings",
           "UploadSettings", "WatchRoot", "WatchingSettings", "WebSettings",
           "capture_overrides", "config_path", "load", "parse", "read_token", "with_base_url"]


def config_path(explicit: str | None) -> Path:
    if explicit:
        return Path(explicit)
    env = os.environ.get("UPLIFT_CAPTURE_CONFIG")
    return Path(env) if env else DEFAULT_CONFIG_PATH


def load(explicit: str | None = None) -> Config:
    path = config_path(explicit)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found (pass --config or set "
                          f"UPLIFT_CAPTURE_CONFIG)") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse(data, path.resolve())


def read_token(cfg: Config) -> str:
    """$UPLIFT_API_TOKEN, else api.token_file, else the systemd credential."""
    token = os.environ.get("UPLIFT_API_TOKEN", "").strip()
    if token:
        return token
    candidates = []
    if cfg.api.token_file:
        candidates.append((cfg.api.token_file, f"{cfg.source}: [api] token_file"))
    creds = os.environ.get("CREDENTIALS_DIRECTORY")
    if creds:
        candidates.append((Path(creds) / TOKEN_CREDENTIAL,
                           f"systemd credential {TOKEN_CREDENTIAL}"))
    for path, where in candidates:
        try:
            token = path.read_text().strip()
        except OSError as exc:
            raise ConfigError(f"{where}: cannot read {path}: {exc.strerror}") from None
        if not token:
            raise ConfigError(f"{where}: {path} is empty")
        return token
    raise ConfigError(f"{cfg.source}: no API token: set UPLIFT_API_TOKEN, [api] token_file, "
                      f"or the systemd credential {TOKEN_CREDENTIAL}")


def with_base_url(cfg: Config, base_url: str) -> Config:
    return replace(cfg, api=replace(cfg.api, base_url=base_url))
