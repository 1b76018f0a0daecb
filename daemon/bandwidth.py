"""A token bucket shared by all uploads, so `upload.bandwidth_limit` caps their sum."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable

UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3,
         "gb": 1000**3, "kib": 1024, "mib": 1024**2, "gib": 1024**3}


def parse_rate(text: str) -> float:
    """"20MB/s", "500 KiB/s", "0" -> bytes per second (0 means unlimited)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*(?:/\s*s)?\s*", text)
    if not m or m.group(2).lower() not in UNITS:
        raise ValueError(f"{text!r} is not a rate like \"20MB/s\" or \"500KiB/s\"")
    return float(m.group(1)) * UNITS[m.group(2).lower()]


class Limiter:
    def __init__(self, rate: float, burst_seconds: float = 0.25,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.rate = rate
        self.capacity = rate * burst_seconds
        self.tokens = self.capacity
        self.clock, self.sleep = clock, sleep
        self.last = clock()
        self._lock = threading.Lock()

    def take(self, n: int) -> None:
        """Block until `n` bytes may go."""
        if self.rate <= 0:
            return
        with self._lock:
            now = self.clock()
            self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
            self.last = now
            self.tokens -= n
            wait = -self.tokens / self.rate if self.tokens < 0 else 0.0
        if wait > 0:
            self.sleep(wait)
