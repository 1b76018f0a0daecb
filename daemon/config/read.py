"""Reading TOML tables for the config: every value checked as it is read, every error naming
the file and the key, leftover keys reported as typos. The settings themselves live in
settings.py, the parsers per section in parse.py."""

from __future__ import annotations

import ipaddress
import math
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

# The largest number of any key: every count, rate and wait a person means is far below it,
# and a wait above ~9.2e9 s (a "1e10" timeout) is an OverflowError in each socket and sleep
# that gets it, at run time rather than here.
MOST = 1e9


class ConfigError(Exception):
    """A config problem an admin can fix; the message names the file and key."""


class Table:
    """One TOML table being read: tracks which keys were used so leftovers are typos."""

    def __init__(self, data: Mapping[str, Any], name: str, source: Path):
        if not isinstance(data, Mapping):
            raise ConfigError(f"{source}: [{name}] must be a table")
        self.data, self.name, self.source = data, name, source
        self.used: set[str] = set()

    def where(self, key: str) -> str:
        return f"{self.source}: [{self.name}] {key}" if self.name else f"{self.source}: {key}"

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = None,
            required: bool = False) -> Any:
        self.used.add(key)
        if key not in self.data:
            if required:
                raise ConfigError(f"{self.where(key)}: missing (required)")
            return default
        value = self.data[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        # TOML ints are fine where a float is wanted; bools are not numbers here.
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            want = " or ".join(type_word(k) for k in kinds)
            raise ConfigError(f"{self.where(key)}: must be {want}, got {value!r}")
        return value

    def number(self, key: str, default: float, minimum: float, integer: bool = False) -> Any:
        value = self.get(key, int if integer else float, default)
        if not math.isfinite(value):  # TOML has nan and inf: no count, rate or wait is either
            raise ConfigError(f"{self.where(key)}: must be a finite number, got {value!r}")
        if value < minimum:
            raise ConfigError(f"{self.where(key)}: must be at least {minimum}, got {value!r}")
        if value > MOST:
            raise ConfigError(f"{self.where(key)}: must be at most {MOST:g}, got {value!r}")
        return value

    def table(self, key: str) -> Table:
        sub = self.get(key, dict, {})
        return Table(sub, f"{self.name}.{key}" if self.name else key, self.source)

    def finish(self) -> None:
        extra = sorted(set(self.data) - self.used)
        if extra:
            known = ", ".join(sorted(self.used)) or "none"
            raise ConfigError(f"{self.where(extra[0])}: unknown key (known keys here: {known})")


def type_word(kind: type) -> str:
    return {str: "a string", int: "a whole number", float: "a number", bool: "true or false",
            dict: "a table", list: "a list"}.get(kind, kind.__name__)


NIL_PROBLEM = "the all-zero UUID is a placeholder, not an athlete; copy the athlete's UUID " \
              "from Uplift"


def parse_uuid(text: str, where: str) -> str:
    try:
        value = uuid.UUID(text)
    except (ValueError, AttributeError, TypeError):
        raise ConfigError(f"{where}: {text!r} is not a UUID") from None
    if not value.int:
        raise ConfigError(f"{where}: {NIL_PROBLEM}")
    return str(value)


def resolve_path(path: str, source: Path) -> Path:
    """Relative paths are relative to the config file, so a config works from any cwd."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else (source.parent / p).resolve()


def database_url(url: str, source: Path) -> str:
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith("sqlite:////") and url != "sqlite://":
        rest = url[len(prefix):]
        if rest and rest != ":memory:":
            return prefix + str(resolve_path(rest, source))
    return url


def check_base_url(url: str, where: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{where}: {url!r} is not an http(s) URL")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ConfigError(f"{where}: must use https (plain http is only allowed for a "
                          f"loopback address such as 127.0.0.1), got {url!r}")
    return url.rstrip("/")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


DURATION_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def duration(text: str, where: str) -> float:
    """"90s", "30m", "24h", "7d" (or plain seconds) -> seconds, at least one."""
    value = text.strip().lower()
    unit = DURATION_UNITS.get(value[-1:]) if value else None
    number = value[:-1] if unit is not None else value
    try:
        seconds = float(number) * (unit or 1.0)
    except ValueError:
        seconds = -1.0
    if not math.isfinite(seconds) or seconds < 1:
        raise ConfigError(f"{where}: must be a duration such as \"24h\", \"90m\" or "
                          f"\"3600s\" (at least 1 s), got {text!r}")
    return seconds


def hhmm(text: str, where: str) -> tuple[int, int]:
    try:
        hour, minute = (int(x) for x in text.split(":"))
        if not (0 <= hour < 24 and 0 <= minute < 60):
            raise ValueError
    except ValueError:
        raise ConfigError(f"{where}: must be a time of day as HH:MM, got {text!r}") from None
    return hour, minute


def existing_file(t: Table, key: str, source: Path) -> Path | None:
    value = t.get(key, str)
    if not value:
        return None
    path = resolve_path(value, source)
    if not path.is_file():
        raise ConfigError(f"{t.where(key)}: file {str(path)!r} does not exist")
    return path


def proxy_url(t: Table) -> str | None:
    value = (t.get("proxy", str, "") or "").strip()
    if not value:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https", "socks5", "socks5h") or not parts.hostname:
        raise ConfigError(f"{t.where('proxy')}: must be a proxy URL such as "
                          f"\"http://proxy.lab:3128\"")
    return value


def hours_text(t: Table, key: str) -> str:
    value = (t.get(key, str, "") or "").strip()
    if value:
        from daemon.work import schedule

        try:
            schedule.parse_hours(value)
        except ValueError as exc:
            raise ConfigError(f"{t.where(key)}: {exc}") from None
    return value
