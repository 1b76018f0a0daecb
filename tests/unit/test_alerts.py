"""The notifier's pure parts: batching, once-per-incident, retry/backoff and redaction, driven by
pump() with a fake clock and a recording sender (the real apprise path is in
tests/integration/test_alerts_webhook.py)."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from daemon.alerts.notifier import (
    CREDENTIALS_REJECTED,
    STUCK,
    DailySummary,
    Message,
    Notifier,
    Target,
    next_summary_at,
    redact_url,
    stuck_check,
)

TOKEN = "sandbox-test-token-5b9e2c"


class Recorder:
    def __init__(self, fail_times: int = 0) -> None:
        self.sent: list[tuple[str, Message]] = []
        self.tries = 0
        self.fail_times = fail_times

    def __call__(self, target: Target, message: Message) -> tuple[bool, str]:
        self.tries += 1
        if self.tries <= self.fail_times:
            return False, f"connection refused by {target.url}"
        self.sent.append((target.url, message))
        return True, "sent"


def make(recorder: Recorder, urls: tuple[str, ...] = ("json://a/x",), **kw: object) -> \
        tuple[Notifier, list[float]]:
    now = [1000.0]
    n = Notifier(urls, 60, clock=lambda: now[0], sender=recorder, source="station-1",
                 redact=lambda s: s.replace(TOKEN, "[redacted]"), **kw)  # type: ignore[arg-type]
    return n, now


def test_failures_within_the_window_become_one_message() -> None:
    rec = Recorder()
    n, now = make(rec)
    for i in range(5):
        n.job_failed(f"/captures/a/swing{i}.mov", f"reason {i}")
        now[0] += 5
    assert n.pump(now[0]) == 1060.0 and rec.sent == []  # not before the window closes
    now[0] = 1060.0
    n.pump(now[0])
    assert len(rec.sent) == 1
    msg = rec.sent[0][1]
    assert "5 files failed" in msg.title and "station-1" in msg.title and msg.kind == "failure"
    for i in range(5):
        assert f"/captures/a/swing{i}.mov: reason {i}" in msg.body
    # A later failure opens a new window.
    n.job_failed("/captures/a/late.mov", "refused")
    now[0] += 61
    n.pump(now[0])
    assert len(rec.sent) == 2 and "1 file failed" in rec.sent[1][1].title


def test_long_batches_are_capped() -> None:
    rec = Recorder()
    n, now = make(rec, max_files=3)
    for i in range(10):
        n.job_failed(f"/c/{i}.mov", "x")
    now[0] += 60
    n.pump(now[0])
    body = rec.sent[0][1].body
    assert "/c/2.mov" in body and "/c/3.mov" not in body and "and 7 more" in body


def test_the_commands_a_message_suggests_name_the_config_that_is_not_the_default() -> None:
    """A station started with `--config /srv/uplift/config.toml`: the command in the e-mail
    must run as printed (a bare `uplift-capture retry --failed` reads the default config)."""
    for config, suffix in (("/srv/uplift/config.toml", " --config /srv/uplift/config.toml"),
                           (None, "")):
        rec = Recorder()
        n, now = make(rec, max_files=1, config=config)
        n.job_failed("/c/0.mov", "x")
        n.job_failed("/c/1.mov", "x")
        now[0] += 60
        n.pump(now[0])
        body = rec.sent[0][1].body
        assert body.endswith(f"uplift-capture retry --failed{suffix}")
        assert f"`uplift-capture status{suffix}` lists them all" in body


def test_incident_once_and_resolved_once() -> None:
    rec = Recorder()
    n, now = make(rec)
    assert n.incident(CREDENTIALS_REJECTED, "the API refused the token")
    assert not n.incident(CREDENTIALS_REJECTED, "again")
    assert n.resolved(CREDENTIALS_REJECTED, "accepted again")
    assert not n.resolved(CREDENTIALS_REJECTED, "again")
    assert n.stuck("nothing uploaded for 30 min") and not n.stuck("still")
    n.pump(now[0])
    titles = [m.title for _, m in rec.sent]
    assert titles == ["Uplift capture (station-1): problem: credentials rejected",
                      "Uplift capture (station-1): resolved: credentials rejected",
                      f"Uplift capture (station-1): problem: {STUCK}"]


def test_every_text_is_redacted() -> None:
    rec = Recorder()
    n, now = make(rec)
    n.job_failed(f"/c/{TOKEN}.mov", f"server said Bearer {TOKEN}")
    n.incident("x", f"token {TOKEN}")
    n.summary(f"t={TOKEN}")
    now[0] += 60
    n.pump(now[0])
    assert len(rec.sent) == 3
    assert all(TOKEN not in m.title + m.body for _, m in rec.sent)


def test_retry_with_backoff_then_drop(caplog: pytest.LogCaptureFixture) -> None:
    rec = Recorder(fail_times=100)
    n, now = make(rec, attempts=3, backoff=2.0)
    n.summary("hello")
    assert n.pump(now[0]) == now[0] + 2.0  # first retry in 2 s
    now[0] += 2
    assert n.pump(now[0]) == now[0] + 4.0  # then 4 s
    now[0] += 4
    assert n.pump(now[0]) is None  # third try failed: dropped
    assert rec.tries == 3 and n.dropped == 1 and n.sent == 0


def test_retry_succeeds_for_the_failing_target_only() -> None:
    rec = Recorder(fail_times=1)
    n, now = make(rec, urls=("json://a/x", "json://b/y"))
    n.summary("hello")
    n.pump(now[0])
    assert [u for u, _ in rec.sent] == ["json://b/y"]
    now[0] += 10
    n.pump(now[0])
    assert sorted(u for u, _ in rec.sent) == ["json://a/x", "json://b/y"]


def test_no_urls_means_no_thread_and_no_work() -> None:
    n = Notifier([], 60, sender=lambda t, m: pytest.fail("sent"))
    n.job_failed("/c/a.mov", "x")
    n.summary("x")
    n.start()
    assert n._thread is None and n.stop(1)


def test_pending_is_bounded() -> None:
    rec = Recorder(fail_times=10**6)
    n, _ = make(rec, max_pending=5)
    for i in range(8):
        n.summary(f"m{i}")
    assert len(n._pending) == 5 and n.dropped == 3


@pytest.mark.parametrize(("url", "shown"), [
    ("mailtos://user:pa55word@smtp.lab.org?to=coach@lab.org", "mailtos://user:****@smtp.lab.org/…"),
    ("json://127.0.0.1:8080/hook", "json://127.0.0.1:8080/…"),
    ("slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnl", "slack://t1jj3t3l2/…"),
])
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown
    assert "pa55word" not in redact_url(url) and "TIiajkdnl" not in redact_url(url)


def test_apprise_privacy_form_and_secrets() -> None:
    from daemon.alerts.targets import make_target

    t = make_target("slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ")
    assert "TIiajkdnlazkcOXrIdevi7FQ" not in t.shown and t.plugin is not None
    assert t.scrub("POST /services/T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ failed") \
        == "POST /services/****/****/**** failed"
    m = make_target("mailtos://user:pa55word@smtp.lab.org?to=coach@lab.org")
    assert "pa55word" not in m.shown and m.scrub("login pa55word") == "login ****"
    assert make_target("bogus://x").plugin is None


def test_importing_alerts_does_not_import_apprise() -> None:
    code = "import daemon.alerts.notifier, sys; print('apprise' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_stuck_check() -> None:
    assert stuck_check(0.0, 3, 30 * 60, 30)
    assert not stuck_check(0.0, 3, 29 * 60, 30)
    assert not stuck_check(0.0, 0, 99 * 60, 30)  # nothing waits: not stuck
    assert not stuck_check(None, 3, 99 * 60, 30)
    assert not stuck_check(0.0, 3, 99 * 60, 0)  # 0 = off


def test_next_summary_at() -> None:
    assert next_summary_at(datetime(2024, 6, 3, 12, 0), "18:00") == datetime(2024, 6, 3, 18)
    assert next_summary_at(datetime(2024, 6, 3, 18, 0), "18:00") == datetime(2024, 6, 4, 18)
    assert next_summary_at(datetime(2024, 6, 3, 19, 0), "18:00") == datetime(2024, 6, 4, 18)
    tz = ZoneInfo("Europe/Berlin")  # the DST night: still 18:00 on the wall clock
    got = next_summary_at(datetime(2024, 3, 30, 19, 0, tzinfo=tz), "18:00")
    assert got == datetime(2024, 3, 31, 18, 0, tzinfo=tz)
    # 23 wall-clock hours, 22 real ones (the clock skips 02:00-03:00)
    assert got.astimezone(UTC) - datetime(2024, 3, 30, 18, 0, tzinfo=UTC) == timedelta(hours=22)
    with pytest.raises(ValueError, match="not a time of day"):
        DailySummary("25:00")


def test_daily_summary_text() -> None:
    text = DailySummary.text({"done": 12, "failed": 1, "queued": 0},
                             [("/c/a.mov", "not a QuickTime movie")])
    assert text.splitlines() == ["Today: 12 done, 1 failed", "- /c/a.mov: not a QuickTime movie"]


def test_a_failing_target_costs_one_try_per_pass() -> None:
    """Five messages due for a dead target: one send attempt now, the rest wait for its retry
    time; a healthy second target still gets all five in the same pass."""
    tried: list[str] = []

    def sender(target: Target, message: Message) -> tuple[bool, str]:
        tried.append(target.url)
        return target.url != "json://dead/x", "refused"

    n, now = make(Recorder(), urls=("json://dead/x", "json://ok/y"), attempts=10, backoff=1.0)
    n.sender = sender
    for i in range(5):
        n.summary(f"m{i}")
    assert n.pump(now[0]) == now[0] + 1.0
    assert tried.count("json://dead/x") == 1 and tried.count("json://ok/y") == 5
    now[0] += 1
    n.pump(now[0])
    assert tried.count("json://dead/x") == 2
    n.pump(now[0] + 100, final=True)  # at stop: one more try, the rest dropped
    assert tried.count("json://dead/x") == 3 and n.dropped == 5 and not n._pending


def test_a_flood_of_failures_stays_bounded() -> None:
    rec = Recorder()
    n, now = make(rec, max_files=2)
    for i in range(100):
        n.job_failed(f"/c/{i}.mov", "x")
    assert len(n._failures) == 40
    now[0] += 60
    n.pump(now[0])
    assert "100 files failed" in rec.sent[0][1].title and "and 98 more" in rec.sent[0][1].body
