"""Tell people when something needs them: apprise notifications from one background thread.

Callers only enqueue (a lock and a list), so a target that is down or slow never delays an
upload. The thread batches failed files (`batch_seconds` after the first one, a single message
names them all), sends each message to each URL, retries a failed URL with growing delays,
and after `attempts` tries logs and drops it. Every text passes `redact` (the API token and
other registered secrets); target URLs are logged only in apprise's privacy form.

apprise is imported on the first send (about 17 MiB of RSS on import, ~30 MiB once its
plugins are loaded), so a station without [notify] urls never pays for it. Parsing a URL and
sending one message to it (everything that touches apprise) is in targets.py.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from daemon import logs
from daemon.alerts.targets import (
    FAILURE,
    INFO,
    SUCCESS,
    Message,
    Target,
    apprise_send,
    make_target,
    redact_url,
)
from daemon.config.hints import command
from daemon.work.schedule import DailySummary, next_summary_at, parse_clock

log = logs.get("notify")

__all__ = ["DailySummary", "Message", "Notifier", "Target", "next_summary_at", "parse_clock",
           "redact_url", "stuck_check"]

# Incident names the service reports (any string works; these keep messages consistent).
CREDENTIALS_REJECTED = "credentials rejected"
CERTIFICATE_UNTRUSTED = "certificate untrusted"
WATCH_FOLDER_LOST = "watch folder lost"
DATABASE_UNWRITABLE = "database unwritable"
LOW_DISK = "low disk space"
STUCK = "queue stuck"
ANALYSIS_CREDENTIALS = "analysis not followed: key refused"
CAPTURE_UNANSWERED = "uploads not confirmed"


@dataclass(order=True)
class _Delivery:
    due: float
    seq: int
    message: Message = field(compare=False)
    target: Target = field(compare=False)
    attempt: int = field(default=0, compare=False)


class Notifier:
    """`Notifier(urls, batch_seconds).start()`; then, from any thread: `job_failed`,
    `incident`/`resolved`, `stuck`, `summary`. `stop()` sends what is pending, once."""

    def __init__(self, urls: Sequence[str], batch_seconds: float = 60.0, *,
                 clock: Callable[[], float] = time.monotonic,
                 redact: Callable[[str], str] = lambda text: text,
                 attempts: int = 5, backoff: float = 5.0, max_backoff: float = 600.0,
                 max_files: int = 50, max_pending: int = 500, source: str | None = None,
                 sender: Callable[[Target, Message], tuple[bool, str]] = apprise_send,
                 config: str | None = None):
        self.urls = tuple(urls)
        self.config = config  # the config file: the commands a message suggests name it
        self.batch_seconds = batch_seconds
        self.clock, self.redact, self.sender = clock, redact, sender
        self.attempts, self.backoff, self.max_backoff = attempts, backoff, max_backoff
        self.max_files, self.max_pending = max_files, max_pending
        self.source = source if source is not None else socket.gethostname()
        self._cv = threading.Condition()
        self._failures: list[tuple[str, str]] = []
        self._more_failures = 0
        self._analysed: list[str] = []  # captures that failed Uplift's checks (or gone, unknown)
        self._batch_due: float | None = None
        self._pending: list[_Delivery] = []
        self._incidents: set[str] = set()
        self._seq = 0
        self._targets: list[Target] | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.sent = self.dropped = 0  # counters for status/metrics

    # --- called from anywhere: enqueue only ---

    def job_failed(self, file_path: str, reason: str) -> None:
        if not self.urls:
            return
        with self._cv:
            if len(self._failures) < 20 * self.max_files:
                self._failures.append((self.redact(str(file_path)), self.redact(reason)))
            else:  # a flood: count the rest, keep memory bounded
                self._more_failures += 1
            if self._batch_due is None:
                self._batch_due = self.clock() + self.batch_seconds
                self._cv.notify()

    def capture_analysed(self, line: str) -> None:
        """A followed capture failed Uplift's checks (or was deleted there, or its analysis
        stayed unknown): batched with failed files, one message for them all."""
        if not self.urls:
            return
        with self._cv:
            if len(self._analysed) < 20 * self.max_files:
                self._analysed.append(self.redact(line))
            if self._batch_due is None:
                self._batch_due = self.clock() + self.batch_seconds
                self._cv.notify()

    def incident(self, name: str, message: str) -> bool:
        """Once per incident: True when this call opened it (and a message was queued)."""
        with self._cv:
            if name in self._incidents:
                return False
            self._incidents.add(name)
        self._enqueue(Message(self._title(f"problem: {name}"), message, FAILURE))
        return True

    def resolved(self, name: str, message: str) -> bool:
        """Once when an open incident ends: True when it was open."""
        with self._cv:
            if name not in self._incidents:
                return False
            self._incidents.discard(name)
        self._enqueue(Message(self._title(f"resolved: {name}"), message, SUCCESS))
        return True

    def stuck(self, message: str) -> bool:
        """The queue is stuck: an incident, so repeated checks notify once until
        `resolved(STUCK, ...)`."""
        return self.incident(STUCK, message)

    def summary(self, text: str) -> None:
        self._enqueue(Message(self._title("daily summary"), text, INFO))

    @property
    def open_incidents(self) -> frozenset[str]:
        with self._cv:
            return frozenset(self._incidents)

    # --- lifecycle ---

    def start(self) -> None:
        if not self.urls or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="notifier", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> bool:
        """Flush the batch and try what is pending once more; True when the thread ended in
        time (a hung target leaves it behind as a daemon thread)."""
        with self._cv:
            self._stopping = True
            self._cv.notify()
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def test(self) -> list[tuple[str, bool, str]]:
        """`notify-test`: one message to every URL, now; (URL for people, ok, detail)."""
        results = []
        message = Message(self._title("test"), self.redact(
            f"A test message from the Uplift capture daemon on {self.source}. "
            "Failed uploads, lost watch folders and rejected credentials will arrive here."),
            INFO)
        for url in self.urls:
            try:
                target = make_target(url)
            except Exception as exc:  # apprise refusing a URL must not stop the others
                results.append((redact_url(url), False, f"{type(exc).__name__}"))
                continue
            ok, detail = self.sender(target, message)
            results.append((target.shown, ok, self.redact(detail)))
        return results

    # --- the thread ---

    def _title(self, what: str) -> str:
        return self.redact(f"Uplift capture ({self.source}): {what}" if self.source
                           else f"Uplift capture: {what}")

    def _enqueue(self, message: Message) -> None:
        if not self.urls:
            return
        message = Message(self.redact(message.title), self.redact(message.body), message.kind)
        with self._cv:
            for target in self._targets_locked():
                self._push(_Delivery(self.clock(), 0, message, target))
            self._cv.notify()

    def _targets_locked(self) -> list[Target]:
        # Placeholders until the thread parses them, so enqueueing never imports apprise.
        if self._targets is None:
            self._targets = [Target(url, redact_url(url)) for url in self.urls]
        return self._targets

    def _push(self, delivery: _Delivery) -> None:
        self._seq += 1
        delivery.seq = self._seq
        self._pending.append(delivery)
        if len(self._pending) > self.max_pending:  # a target down for days: keep the newest
            self._pending.sort()
            old = self._pending.pop(0)
            self.dropped += 1
            log.error("notify.dropped", target=old.target.shown, title=old.message.title,
                      reason="too many messages waiting")

    def _analysis_message(self) -> Message | None:
        lines, self._analysed = self._analysed, []
        if not lines:
            return None
        n = len(lines)
        shown = [f"- {line}" for line in lines[:self.max_files]]
        if n > self.max_files:
            shown.append(f"… and {n - self.max_files} more (`{command('status', self.config)}` "
                         "lists them)")
        title = "1 capture was not analysed" if n == 1 else f"{n} captures were not analysed"
        body = "\n".join(shown) + "\n\nThese files were uploaded; Uplift could not analyse them."
        return Message(self._title(title), self.redact(body), FAILURE)

    def _failure_message(self) -> Message | None:
        failures, self._failures, self._batch_due = self._failures, [], None
        n, self._more_failures = len(failures) + self._more_failures, 0
        if not failures:
            return None
        lines = [f"- {path}: {reason}" for path, reason in failures[:self.max_files]]
        if n > self.max_files:
            lines.append(f"… and {n - self.max_files} more (`{command('status', self.config)}` "
                         "lists them all)")
        title = f"{n} file failed to upload" if n == 1 else f"{n} files failed to upload"
        body = "\n".join(lines) + "\n\nAfter fixing the cause: " + \
            command("retry --failed", self.config)
        return Message(self._title(title), self.redact(body), FAILURE)

    def pump(self, now: float, final: bool = False) -> float | None:
        """Do what is due at `now` (everything once, when `final`); returns when next to run.
        The thread calls it; tests may call it directly with a fake clock."""
        with self._cv:
            if self._batch_due is not None and (final or self._batch_due <= now):
                for message in (self._analysis_message(), self._failure_message()):
                    for target in self._targets_locked() if message is not None else ():
                        assert message is not None
                        self._push(_Delivery(now, 0, message, target))
            due = [d for d in self._pending if final or d.due <= now]
            self._pending = [d for d in self._pending if not (final or d.due <= now)]
        # A target that just failed is not tried again in this pass: its other messages wait
        # for its retry time (or, at stop, are dropped), so one hung target costs one timeout.
        failed: dict[int, float | None] = {}
        for delivery in sorted(due):
            key = id(delivery.target)
            if key in failed:
                self._postpone(delivery, failed[key])
                continue
            ok = self._deliver(delivery, final)
            if not ok:
                failed[key] = None if final else delivery.due
        with self._cv:
            return self._next_due_locked()

    def _postpone(self, d: _Delivery, until: float | None) -> None:
        if until is None or d.attempt + 1 >= self.attempts:
            self.dropped += 1
            log.error("notify.dropped", target=d.target.shown, title=d.message.title,
                      attempts=d.attempt, detail="the target failed just before")
            return
        with self._cv:
            d.due = until
            self._push(d)

    def _next_due_locked(self) -> float | None:
        times = [d.due for d in self._pending]
        if self._batch_due is not None:
            times.append(self._batch_due)
        return min(times) if times else None

    def _deliver(self, d: _Delivery, final: bool) -> bool:
        """One try; False when it failed (the delivery is then requeued or dropped)."""
        if not d.target.parsed and self.sender is apprise_send:
            try:
                parsed = make_target(d.target.url)
            except Exception:  # treat as unknown: logged and dropped below
                parsed = Target(d.target.url, d.target.shown, parsed=True)
            d.target.shown, d.target.secrets, d.target.plugin, d.target.parsed = \
                parsed.shown, parsed.secrets, parsed.plugin, True
            if parsed.plugin is None:
                log.error("notify.bad_url", target=d.target.shown,
                          reason="not a notification URL apprise knows")
        if d.target.parsed and d.target.plugin is None and self.sender is apprise_send:
            self.dropped += 1
            return True  # nothing to retry
        start = time.monotonic()
        ok, detail = self.sender(d.target, d.message)
        took = round(time.monotonic() - start, 3)
        d.attempt += 1
        if ok:
            self.sent += 1
            log.info("notify.sent", target=d.target.shown, kind=d.message.kind, seconds=took)
            return True
        detail = self.redact(d.target.scrub(detail))
        if d.attempt >= self.attempts or final:
            self.dropped += 1
            log.error("notify.dropped", target=d.target.shown, title=d.message.title,
                      attempts=d.attempt, detail=detail)
            return False
        delay = min(self.max_backoff, self.backoff * 2 ** (d.attempt - 1))
        log.warning("notify.failed", target=d.target.shown, attempt=d.attempt,
                    retry_in=delay, detail=detail, seconds=took)
        with self._cv:
            d.due = self.clock() + delay
            self._push(d)
        return False

    def _run(self) -> None:
        while True:
            with self._cv:
                stopping = self._stopping
            if stopping:
                self.pump(self.clock(), final=True)
                return
            try:
                self.pump(self.clock())
            except Exception:  # never let one bad message end notifications for good
                log.exception("notify.error")
                time.sleep(min(self.backoff, 5.0))
            with self._cv:
                # Recomputed under the lock: work enqueued since pump() is not missed.
                next_at = self._next_due_locked()
                wait = None if next_at is None else next_at - self.clock()
                if not self._stopping and (wait is None or wait > 0):
                    self._cv.wait(wait)


# --- pure helpers for the service's periodic checks ---

def stuck_check(last_upload_at: float | None, waiting_count: int, now: float,
                stuck_minutes: float) -> bool:
    """Work waits but nothing was uploaded for `stuck_minutes`. `last_upload_at` is the last
    upload (or, before any, when the work began waiting); None or 0 minutes never reports.
    Jobs held on purpose (paused, outside upload hours) should not be counted as waiting."""
    if stuck_minutes <= 0 or waiting_count <= 0 or last_upload_at is None:
        return False
    return now - last_upload_at >= stuck_minutes * 60
