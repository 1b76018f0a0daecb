"""The error classification and backoff function, on its own."""

from __future__ import annotations

import itertools

import pytest

from daemon.errors import MAX_DELAY, Decision, Kind, Outcome, TransferError, Where, backoff, decide


def http(where: Where, status: int, retry_after: float | None = None) -> TransferError:
    return TransferError(where, Kind.HTTP, f"HTTP {status}", status=status,
                         retry_after=retry_after)


@pytest.mark.parametrize(("error", "outcome"), [
    (TransferError(Where.API, Kind.CONNECT, "refused"), Outcome.RETRY),
    (TransferError(Where.STORAGE, Kind.TIMEOUT, "stalled"), Outcome.RETRY),
    (TransferError(Where.STORAGE, Kind.PROTOCOL, "cut"), Outcome.RETRY),
    (TransferError(Where.API, Kind.MALFORMED, "bad json", status=200), Outcome.RETRY),
    (http(Where.API, 429), Outcome.RETRY),
    (http(Where.API, 500), Outcome.RETRY),
    (http(Where.STORAGE, 503), Outcome.RETRY),
    (http(Where.API, 401), Outcome.PAUSE),
    (http(Where.API, 403), Outcome.PAUSE),
    (http(Where.STORAGE, 403), Outcome.RERESERVE),
    (http(Where.API, 400), Outcome.FAIL),
    (http(Where.API, 404), Outcome.FAIL),
    (http(Where.API, 409), Outcome.FAIL),
    (http(Where.API, 422), Outcome.FAIL),
    (http(Where.STORAGE, 400), Outcome.FAIL),
    (TransferError(Where.FILE, Kind.CHANGED, "changed"), Outcome.RESETTLE),
    (TransferError(Where.FILE, Kind.VANISHED, "gone"), Outcome.GONE),
    (TransferError(Where.FILE, Kind.UNREADABLE, "denied"), Outcome.FAIL),
])
def test_each_class_gets_its_outcome(error: TransferError, outcome: Outcome) -> None:
    assert decide(error, 1, lambda: 0.5).outcome is outcome


def test_transient_delays_grow_exponentially_and_are_capped() -> None:
    err = TransferError(Where.API, Kind.CONNECT, "refused")
    delays = [decide(err, n, lambda: 1.0).delay for n in range(1, 12)]
    assert delays[:4] == [2.0, 4.0, 8.0, 16.0]
    assert all(b >= a for a, b in itertools.pairwise(delays))
    assert delays[-1] == MAX_DELAY


def test_jitter_spreads_delays_between_half_and_full() -> None:
    assert backoff(3, 0.0) == 4.0
    assert backoff(3, 1.0) == 8.0
    assert 4.0 < backoff(3, 0.3) < 8.0


def test_retry_after_is_honoured_but_capped() -> None:
    assert decide(http(Where.API, 429, retry_after=30), 1, lambda: 0.0).delay == 30
    assert decide(http(Where.API, 503, retry_after=1), 4, lambda: 1.0).delay == 16
    assert decide(http(Where.API, 429, retry_after=86400), 1, lambda: 0.0).delay == MAX_DELAY


def test_reason_carries_the_server_message() -> None:
    err = TransferError(Where.API, Kind.HTTP, "HTTP 400: file_name: must use a .mov extension",
                        status=400)
    assert decide(err, 1) == Decision(Outcome.FAIL, 0.0, err.message)
