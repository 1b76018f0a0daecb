"""Reporter.check_stuck on a real job table: work held on purpose (the operator's pause, upload
hours) is never reported stuck; the same queue, not held, is."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.alerts.notifier import Message, Notifier, Target
from daemon.alerts.reporting import Reporter
from daemon.config import NotifySettings
from daemon.jobs.store import Ready, Store
from daemon.service import control
from daemon.work.gate import Gate

NOW = 1_800_000_000.0


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(f"sqlite:///{tmp_path / 'jobs.db'}")
    yield s
    s.close()


def reporter(store: Store, clock: list[float]) -> tuple[Reporter, list[Message], Gate]:
    sent: list[Message] = []

    def record(_target: Target, message: Message) -> tuple[bool, str]:
        sent.append(message)
        return True, "sent"

    rep = Reporter(NotifySettings(urls=("json://127.0.0.1:9/x",), stuck_minutes=1.0), store,
                   wall=lambda: clock[0])
    rep.notifier = Notifier(["json://127.0.0.1:9/x"], 0, sender=record, clock=lambda: clock[0])
    gate = Gate(store, "", wall=lambda: clock[0])
    rep.held = lambda: gate.check()[1]
    return rep, sent, gate


def queue_one(store: Store) -> None:
    seen = store.observe("/w/jane/a.mov", "/w", 10, 1, NOW)
    store.mark_ready(seen.job_id, Ready(
        size=10, mtime_ns=1, athlete_id="a" * 8, session_group_id="g" * 8, file_name="a.mov",
        capture_time="2026-01-01T00:00:00.000Z", camera_configuration="{}",
        movement_attributes="{}"), NOW)


def test_a_paused_queue_is_not_stuck_an_unpaused_one_is(store: Store) -> None:
    clock = [NOW]
    rep, sent, gate = reporter(store, clock)
    queue_one(store)
    control.pause(store, NOW)
    for minutes in (0, 2, 5):  # long past stuck_minutes, but held on purpose
        clock[0] = NOW + minutes * 60
        rep.check_stuck()
        rep.notifier.pump(clock[0])
    assert sent == []

    control.resume(store, clock[0])
    gate.forget()  # as the service does when `resume` pokes it
    rep.check_stuck()  # the wait starts now, not when the pause began
    rep.notifier.pump(clock[0])
    assert sent == []
    clock[0] += 61
    rep.check_stuck()
    rep.notifier.pump(clock[0])
    assert [m.title for m in sent] == [sent[0].title] and "queue stuck" in sent[0].title
