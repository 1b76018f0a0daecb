"""The notifier against real loopback peers through apprise's json:// plugin: a webhook
receiver (http.server in a thread), a closed port, and a listener that accepts but never
answers."""

from __future__ import annotations

import json
import time

import structlog
from support import TOKEN, free_port, wait_for
from webhooks import Receiver, Silent

from daemon.alerts.notifier import CREDENTIALS_REJECTED, Notifier


def redact(text: str) -> str:
    return text.replace(TOKEN, "[redacted]")


def notifier(urls: list[str], batch: float = 0.3, **kw: object) -> Notifier:
    n = Notifier(urls, batch, redact=redact, source="station-1", **kw)  # type: ignore[arg-type]
    n.start()
    return n


def test_one_failure_one_message(receiver: Receiver) -> None:
    n = notifier([receiver.url()])
    try:
        n.job_failed("/captures/ath/swing.mov", "not a QuickTime movie")
        wait_for(lambda: receiver.posts, 10, what="the webhook post")
        time.sleep(0.1)  # let a (wrong) second post show up
        [msg] = receiver.messages()
        assert receiver.posts[0][0] == "/hook"
        assert "/captures/ath/swing.mov: not a QuickTime movie" in msg["message"]
        assert "1 file failed" in msg["title"] and msg["type"] == "failure"
    finally:
        assert n.stop(5)


def test_five_failures_in_the_window_are_one_message(receiver: Receiver) -> None:
    n = notifier([receiver.url()], batch=0.5)
    try:
        for i in range(5):
            n.job_failed(f"/captures/ath/clip{i}.mov", f"refused {i}")
        wait_for(lambda: receiver.posts, 10, what="the webhook post")
        time.sleep(0.6)  # a second batch would have been sent by now
        [msg] = receiver.messages()
        assert "5 files failed" in msg["title"]
        for i in range(5):
            assert f"/captures/ath/clip{i}.mov: refused {i}" in msg["message"]
    finally:
        assert n.stop(5)


def test_incident_notifies_once_and_once_resolved(receiver: Receiver) -> None:
    n = notifier([receiver.url()])
    try:
        for _ in range(3):
            n.incident(CREDENTIALS_REJECTED, "The Uplift API rejected the API token.")
        wait_for(lambda: len(receiver.posts) >= 1, 10, what="the incident")
        for _ in range(3):
            n.resolved(CREDENTIALS_REJECTED, "The API accepts the token again.")
        wait_for(lambda: len(receiver.posts) >= 2, 10, what="the resolution")
        time.sleep(0.3)
        titles = [m["title"] for m in receiver.messages()]
        assert len(titles) == 2
        assert "problem: credentials rejected" in titles[0]
        assert "resolved: credentials rejected" in titles[1]
    finally:
        assert n.stop(5)


def test_the_token_never_reaches_the_receiver(receiver: Receiver) -> None:
    n = notifier([receiver.url()])
    try:
        n.job_failed(f"/captures/{TOKEN}/a.mov", f"401 for Bearer {TOKEN}")
        n.incident("x", f"token {TOKEN} refused")
        n.summary(f"summary {TOKEN}")
        wait_for(lambda: len(receiver.posts) >= 3, 10, what="three posts")
        raw = b"".join(body for _, body in receiver.posts)
        assert TOKEN.encode() not in raw and b"[redacted]" in raw
    finally:
        assert n.stop(5)


def test_unreachable_targets_never_block_callers_and_are_given_up(receiver: Receiver) -> None:
    silent = Silent()
    dead = f"json://user:hunter2pw@127.0.0.1:{free_port()}/hook?cto=0.3&rto=0.3"
    hung = f"json://127.0.0.1:{silent.port}/hook?cto=0.3&rto=0.3"
    with structlog.testing.capture_logs() as events:
        n = notifier([dead, hung, receiver.url()], batch=0.05, attempts=3, backoff=0.1)
        try:
            slowest = 0.0
            deadline = time.monotonic() + 1.5  # calls keep coming while sends hang
            i = 0
            while time.monotonic() < deadline:
                start = time.monotonic()
                n.job_failed(f"/captures/ath/{i}.mov", "refused")
                slowest = max(slowest, time.monotonic() - start)
                i += 1
                time.sleep(0.02)
            assert slowest < 0.05, f"job_failed took {slowest:.3f}s"
            # The healthy target got its messages despite the other two.
            wait_for(lambda: receiver.posts, 10, what="the healthy target's post")
            # Every message to a dead target is tried 3 times, then dropped.
            wait_for(lambda: any(e["event"] == "notify.dropped" and "127.0.0.1:"
                                 f"{silent.port}" in e["target"] for e in events),
                     15, what="the hung target given up")
            wait_for(lambda: any(e["event"] == "notify.dropped" and "user:****@" in e["target"]
                                 for e in events), 15, what="the dead target given up")
            retries = [e for e in events if e["event"] == "notify.failed"]
            assert {e["attempt"] for e in retries} == {1, 2}
        finally:
            # At stop each dead target costs one timeout at most, not one per message.
            stopped = n.stop(3)
            silent.close()
    assert stopped
    assert len(silent.accepted) >= 3  # retried, not silently skipped
    logged = json.dumps(events, default=str)
    assert "hunter2pw" not in logged


def test_notify_test_says_which_worked(receiver: Receiver) -> None:
    dead = f"json://user:hunter2pw@127.0.0.1:{free_port()}/hook?cto=0.3&rto=0.3"
    n = Notifier([receiver.url("t"), dead, "bogus://nowhere"], 60, redact=redact)
    results = n.test()  # synchronous; no thread needed
    assert [ok for _, ok, _ in results] == [True, False, False]
    assert results[0][0] == f"json://127.0.0.1:{receiver.port}/t"
    assert "user:****@" in results[1][0] and "hunter2pw" not in repr(results)
    assert "apprise knows" in results[2][2]
    [msg] = receiver.messages()
    assert "test" in msg["title"]
