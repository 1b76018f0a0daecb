"""Apprise targets: one notification URL parsed, redacted for logs, and sent one message.

Kept apart from the notifier's queue and thread (notifier.py) so that what touches apprise sits
in one place: apprise is imported on the first parse or send only, its own log lines (which can
carry webhook tokens) are caught per thread instead of reaching the root logger, and every
detail a person reads is scrubbed of the URL's secret parts.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

FAILURE, WARNING, INFO, SUCCESS = "failure", "warning", "info", "success"  # apprise NotifyType


@dataclass(frozen=True)
class Message:
    title: str
    body: str
    kind: str = INFO


@dataclass
class Target:
    """One apprise URL. `shown` is safe to log; `secrets` are the URL's parts it hides."""
    url: str
    shown: str
    secrets: tuple[str, ...] = ()
    plugin: Any = None  # apprise NotifyBase, made on first use in the sending thread
    parsed: bool = False

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "****")
        return text


def redact_url(url: str) -> str:
    """A notify URL fit for logs without importing apprise: scheme, user and host only."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
        user = f"{parts.username}@" if parts.username and parts.password is None else \
            (f"{parts.username}:****@" if parts.username else "")
    except ValueError:
        return url.split(":", 1)[0] + "://…"
    rest = "/…" if parts.path.strip("/") or parts.query else ""
    return f"{parts.scheme}://{user}{host}{port}{rest}"


def make_target(url: str) -> Target:
    """Let apprise parse the URL: its privacy form is what we log, and any piece of the raw URL
    that form hides (password, webhook tokens in the path) is scrubbed from error details."""
    import apprise

    _capture_apprise_logs()
    plugin = apprise.Apprise.instantiate(url)
    if plugin is None:
        return Target(url, redact_url(url), parsed=True)
    shown = str(plugin.url(privacy=True)).split("?", 1)[0]  # type: ignore[no-untyped-call]
    pieces = {p for p in re.split(r"[/:@?&=#,]+", url) if len(p) >= 4}
    secrets = tuple(sorted((p for p in pieces if p not in shown), key=len, reverse=True))
    return Target(url, shown, secrets, plugin, parsed=True)


class _AppriseLogs(logging.Handler):
    """apprise's own log lines can carry webhook URLs (tokens in the path), so they never reach
    the root logger: this handler keeps the warnings of the send in progress, per thread, and
    the caller logs them scrubbed."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.local = threading.local()

    def emit(self, record: logging.LogRecord) -> None:
        lines = getattr(self.local, "lines", None)
        if lines is not None:
            lines.append(record.getMessage())


_handler = _AppriseLogs()


def _capture_apprise_logs() -> None:
    lg = logging.getLogger("apprise")
    if _handler not in lg.handlers:
        lg.addHandler(_handler)
        lg.propagate = False


def apprise_send(target: Target, message: Message) -> tuple[bool, str]:
    """Send one message to one target, synchronously. Returns (ok, detail for people)."""
    if target.plugin is None:
        target.plugin = make_target(target.url).plugin
        if target.plugin is None:
            return False, "not a notification URL apprise knows"
    _handler.local.lines = []
    try:
        ok = bool(target.plugin.notify(body=message.body, title=message.title,
                                       notify_type=message.kind))
    except Exception as exc:  # a plugin bug must not kill the notifier thread
        ok, _handler.local.lines = False, [f"{type(exc).__name__}: {exc}"]
    lines, _handler.local.lines = _handler.local.lines, None
    detail = "sent" if ok else (lines[-1] if lines else "the service did not accept it")
    return ok, target.scrub(detail)

