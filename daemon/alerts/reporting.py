"""Telling people: the service's events (a failed file, a service-wide problem and its end, a
stuck queue, the day's summary) turned into notifications. The Notifier owns its own thread;
everything here only enqueues, so a slow or dead target never delays an upload."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from daemon import logs
from daemon.alerts import notifier as alerts
from daemon.config import NotifySettings
from daemon.config.hints import command
from daemon.jobs import paths
from daemon.jobs.models import JobState
from daemon.work.schedule import DailySummary

log = logs.get("notify")
# Notice names in the job table -> incident names in messages.
INCIDENTS = {"credentials": alerts.CREDENTIALS_REJECTED,
             "certificate": alerts.CERTIFICATE_UNTRUSTED,
             "watch_folder": alerts.WATCH_FOLDER_LOST,
             "database": alerts.DATABASE_UNWRITABLE,
             "low_disk": alerts.LOW_DISK,
             "analysis_credentials": alerts.ANALYSIS_CREDENTIALS,
             "capture_unanswered": alerts.CAPTURE_UNANSWERED}
STUCK_EVERY = 60.0  # seconds between stuck checks (only with notification targets)


class Reporter:
    def __init__(self, settings: NotifySettings, store: Any,
                 wall: Callable[[], float] = time.time,
                 held: Callable[[], str | None] = lambda: None, config: str | None = None):
        self.settings, self.store, self.wall = settings, store, wall
        self.config = config  # the config file, named in the commands a message suggests
        self.notifier = alerts.Notifier(settings.urls, settings.batch_seconds,
                                        redact=logs.scrub, config=config) \
            if settings.urls else None
        self._waiting_since: float | None = None
        # Why uploads are held on purpose now (operator's pause, upload hours), or None: the
        # service passes its Gate's reason, so a held queue is never reported stuck.
        self.held = held

    @property
    def active(self) -> bool:
        return self.notifier is not None

    def start(self) -> None:
        if self.notifier is not None:
            self.notifier.start()

    def close(self) -> None:
        if self.notifier is not None:
            self.notifier.stop(5.0)

    def failed(self, path: str, reason: str) -> None:
        if self.notifier is not None:
            self.notifier.job_failed(paths.readable(path), reason)

    def analysed(self, line: str) -> None:
        """A followed capture failed Uplift's checks, was deleted there, or stayed unknown."""
        if self.notifier is not None:
            self.notifier.capture_analysed(line)

    def notice(self, name: str, message: str | None) -> None:
        """A service-wide condition began (message) or ended (None): once per incident."""
        incident = INCIDENTS.get(name)
        if self.notifier is None or incident is None:
            return
        if message is None:
            self.notifier.resolved(incident, f"{incident}: resolved")
        else:
            self.notifier.incident(incident, message)

    def check_stuck(self) -> None:
        """Work waits (not on purpose: pauses and upload hours hold the gate) but nothing was
        uploaded for stuck_minutes: tell someone, once; and when it moves again."""
        if self.notifier is None:
            return
        now = self.wall()
        if self.held():
            self._waiting_since = None  # the clock starts again when the hold ends
            return
        counts = self.store.counts()
        waiting = counts.get(JobState.QUEUED, 0) + counts.get(JobState.RESERVED, 0) + \
            counts.get(JobState.UPLOADING, 0)
        if not waiting:
            self._waiting_since = None
            self.notifier.resolved(alerts.STUCK, "uploads are moving again")
            return
        if self._waiting_since is None:
            self._waiting_since = now
        last = self.store.last_upload_at() or 0.0
        since = max(last, self._waiting_since)
        if alerts.stuck_check(since, waiting, now, self.settings.stuck_minutes):
            self.notifier.stuck(f"{waiting} file(s) wait, but nothing was uploaded for "
                                f"{self.settings.stuck_minutes:g} minutes; see "
                                f"`{command('status', self.config)}`")
        elif last > self._waiting_since:
            self.notifier.resolved(alerts.STUCK, "uploads are moving again")

    def send_summary(self) -> datetime | None:
        """The day's summary; returns when the next one is due."""
        if self.notifier is None or not self.settings.daily_summary:
            return None
        now_dt = datetime.now()
        since = (now_dt - timedelta(days=1)).timestamp()
        counts, failed = self.store.day_counts(since)
        self.notifier.summary(DailySummary.text(counts, failed))
        return DailySummary(self.settings.daily_summary).next_at(now_dt + timedelta(minutes=1))

    def first_summary(self) -> datetime | None:
        if self.notifier is None or not self.settings.daily_summary:
            return None
        return DailySummary(self.settings.daily_summary).next_at(datetime.now())
