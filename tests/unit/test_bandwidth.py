from __future__ import annotations

import pytest

from daemon.bandwidth import Limiter, parse_rate


@pytest.mark.parametrize(("text", "rate"), [
    ("20MB/s", 20e6), ("500KiB/s", 512_000), ("0", 0), ("1.5 GB/s", 1.5e9), ("300", 300),
    ("2mb", 2e6),
])
def test_parse_rate(text: str, rate: float) -> None:
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["fast", "20 MB per second", "-1MB/s", "5 parsecs/s"])
def test_parse_rate_refuses_nonsense(text: str) -> None:
    with pytest.raises(ValueError, match="is not a rate"):
        parse_rate(text)


def test_limiter_holds_the_average_rate() -> None:
    now = [0.0]
    limiter = Limiter(1_000_000, clock=lambda: now[0],
                      sleep=lambda s: now.__setitem__(0, now[0] + s))
    for _ in range(40):
        limiter.take(250_000)
    # 10 MB at 1 MB/s: about 10 s, less the initial quarter-second burst.
    assert 9.7 <= now[0] <= 10.0


def test_unlimited_never_sleeps() -> None:
    limiter = Limiter(0, sleep=lambda s: pytest.fail("slept"))
    limiter.take(10**9)
