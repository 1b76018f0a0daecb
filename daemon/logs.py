"""structlog setup: JSON lines when stdout is not a terminal (journald, Docker), readable lines on
a terminal; stable event names; secrets redacted before anything is rendered."""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import structlog

# Keys whose values are secret wherever they appear in an event.
SECRET_KEYS = frozenset({"token", "authorization", "upload_fields", "fields", "policy",
                         "x-amz-signature", "signature"})
REDACTED = "[redacted]"
_secrets: set[str] = set()


def add_secret(value: str) -> None:
    """Register a value (the API token) that must never appear in a log line."""
    if value and len(value) >= 6:
        _secrets.add(value)


def scrub(text: str) -> str:
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def _scrub_value(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {k: REDACTED if str(k).lower() in SECRET_KEYS else _scrub_value(v)
                for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub_value(v) for v in value]
    return value


def redact(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    for key in list(event):
        if key.lower() in SECRET_KEYS:
            event[key] = REDACTED
        else:
            event[key] = _scrub_value(event[key])
    return event


# No event name writes more than this many lines a second: a fault that repeats in a tight loop
# (an accept failing for want of descriptors) must not fill the disk. The next line of that
# name says how many were dropped; so does the next line of any name once that second is over
# (a burst that ends with a dropped line would otherwise never be told).
MAX_LINES_PER_SECOND = 10


class RateLimit(logging.Filter):
    """Per event name, at most `per_second` lines in any one-second window."""

    def __init__(self, per_second: int = MAX_LINES_PER_SECOND,
                 clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self.per_second, self.clock = per_second, clock
        self._lock = threading.Lock()
        # name: the times of its last `per_second` lines (a sliding second), and drops since
        self._recent: dict[str, deque[float]] = {}
        self._dropped: dict[str, int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        name = event_name(record)
        now = self.clock()
        with self._lock:
            recent = self._recent.setdefault(name, deque(maxlen=self.per_second))
            if len(recent) == self.per_second and now - recent[0] < 1.0:
                self._dropped[name] = self._dropped.get(name, 0) + 1
                return False
            recent.append(now)
            dropped = self._dropped.pop(name, 0)
            others = {k: n for k, n in self._dropped.items()
                      if now - self._recent[k][-1] >= 1.0} if self._dropped else {}
            for k in others:
                del self._dropped[k]
            if len(self._recent) > 4096:  # names that come and go: keep the recent ones
                self._recent = {k: v for k, v in self._recent.items()
                                if now - v[-1] < 1.0 or k in self._dropped}
        if dropped:
            _note_dropped(record, dropped)
        if others and isinstance(record.msg, dict):
            record.msg = {**record.msg, "dropped_before": others}
        return True


def event_name(record: logging.LogRecord) -> str:
    if isinstance(record.msg, dict):  # structlog's, wrapped for the formatter
        return str(record.msg.get("event", ""))
    # A library's line: its first line, without the numbers that vary (fds, addresses).
    first = str(record.msg).split("\n", 1)[0][:80]
    return record.name + ":" + "".join(c for c in first if not c.isdigit())


def _note_dropped(record: logging.LogRecord, dropped: int) -> None:
    if isinstance(record.msg, dict):
        record.msg = {**record.msg, "dropped": dropped}
    else:
        record.msg = f"{record.msg} ({dropped} lines like this dropped)"


def setup(level: str = "info", json_lines: bool | None = None,
          quiet_libraries: Iterable[str] = ("apscheduler", "httpx", "httpcore", "watchdog",
                                            "alembic"), stream: Any = None) -> None:
    stream = sys.stdout if stream is None else stream
    if json_lines is None:
        json_lines = not stream.isatty()
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact,
    ]
    renderer: Any = (structlog.processors.JSONRenderer() if json_lines
                     else structlog.dev.ConsoleRenderer(colors=False))
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer])
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler.addFilter(RateLimit())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in quiet_libraries:
        logging.getLogger(name).setLevel(logging.WARNING)


def for_commands() -> None:
    """A command (`status`, `athletes add`, ...) prints its own summary on stdout: the events
    its code logs for the daemon's journal are not repeated beside it; a warning or worse goes
    to stderr as one readable line."""
    setup("warning", json_lines=False, stream=sys.stderr)


def get(name: str = "uplift") -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger
