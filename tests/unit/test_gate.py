"""The gate reads the operator's pause from the job table at most once per PAUSE_FRESH, and
afresh after a poke (forget)."""

from __future__ import annotations

from typing import Any

from daemon.service import control
from daemon.work.gate import PAUSE_FRESH, PAUSE_RECHECK, Gate


class Notices:
    def __init__(self) -> None:
        self.current: dict[str, Any] = {}
        self.reads = 0

    def notices(self) -> dict[str, Any]:
        self.reads += 1
        return dict(self.current)


def make(store: Notices, mono: list[float], wall: list[float]) -> Gate:
    return Gate(store, "", wall=lambda: wall[0], clock=lambda: mono[0])


def test_reads_once_per_interval_and_afresh_after_forget() -> None:
    store, mono, wall = Notices(), [0.0], [1000.0]
    gate = make(store, mono, wall)
    assert gate.seconds() == 0.0
    store.current[control.NOTICE] = {"message": "paused", "until": None}
    mono[0] += PAUSE_FRESH / 2
    assert gate.seconds() == 0.0 and store.reads == 1  # the cached read: not yet seen
    gate.forget()
    assert gate.seconds() == PAUSE_RECHECK and store.reads == 2
    store.current.clear()
    mono[0] += PAUSE_FRESH
    assert gate.seconds() == 0.0 and store.reads == 3  # stale after the interval


def test_a_timed_pause_ends_on_time_without_a_read() -> None:
    store, mono, wall = Notices(), [0.0], [1000.0]
    store.current[control.NOTICE] = {"message": "paused", "until": 1010.0}
    gate = make(store, mono, wall)
    assert gate.seconds() == 10.0
    wall[0] = 1010.0
    assert gate.seconds() == 0.0 and store.reads == 1
