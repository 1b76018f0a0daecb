"""The error classification and backoff function, on its own."""

from __future__ import annotations

import itertools

import pytest

from daemon.errors import (
    MAX_DELAY,
    MAX_REFUSALS,
    Decision,
    Kind,
    Outcome,
    TransferError,
    Where,
    after_refusal,
    backoff,
    decide,
)


def http(where: Where, status: int, retry_after: float | None = None, code: str | None = None,
         message: str = "") -> TransferError:
    return TransferError(where, Kind.HTTP, f"HTTP {status}: {code or ''}: {message}",
                         status=status, code=code, retry_after=retry_after)


@pytest.mark.parametrize(("error", "outcome"), [
    (TransferError(Where.API, Kind.CONNECT, "refused"), Outcome.RETRY),
    (TransferError(Where.STORAGE, Kind.TIMEOUT, "stalled"), Outcome.RETRY),
    (TransferError(Where.STORAGE, Kind.PROTOCOL, "cut"), Outcome.RETRY),
    (TransferError(Where.API, Kind.MALFORMED, "bad json", status=200), Outcome.REFUSED),
    (TransferError(Where.API, Kind.TOO_LARGE, "1 MiB+", status=201), Outcome.REFUSED),
    (TransferError(Where.API, Kind.CERTIFICATE, "untrusted"), Outcome.PAUSE),
    (TransferError(Where.STORAGE, Kind.CERTIFICATE, "untrusted"), Outcome.PAUSE),
    (http(Where.API, 429), Outcome.RETRY),
    (http(Where.API, 500), Outcome.RETRY),
    (http(Where.STORAGE, 503), Outcome.RETRY),
    (http(Where.API, 401), Outcome.PAUSE),
    (http(Where.API, 403), Outcome.PAUSE),
    (http(Where.STORAGE, 403), Outcome.REFUSED),
    (http(Where.STORAGE, 403, code="SignatureDoesNotMatch"), Outcome.REFUSED),
    (http(Where.STORAGE, 403, code="AccessDenied", message="Invalid according to Policy: "
          "Policy Condition failed"), Outcome.REFUSED),
    (http(Where.STORAGE, 403, code="AccessDenied", message="Invalid according to Policy: "
          "Policy expired."), Outcome.RERESERVE),
    (http(Where.STORAGE, 400, code="RequestTimeout"), Outcome.RETRY),
    (http(Where.STORAGE, 408), Outcome.RETRY),
    (http(Where.STORAGE, 503, code="SlowDown"), Outcome.RETRY),
    (http(Where.STORAGE, 400, code="EntityTooLarge"), Outcome.FAIL),
    (http(Where.STORAGE, 400, code="EntityTooSmall"), Outcome.FAIL),
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


def test_a_storage_403_is_a_lapse_when_our_clock_says_the_window_is_over() -> None:
    err = http(Where.STORAGE, 403, code="SignatureDoesNotMatch")
    assert decide(err, 1, lambda: 0.5, lapsed=True).outcome is Outcome.RERESERVE


def test_too_large_names_the_limit_in_plain_words() -> None:
    d = decide(http(Where.STORAGE, 400, code="EntityTooLarge", message="too big"), 1)
    assert d.outcome is Outcome.FAIL and "larger than the upload endpoint accepts" in d.reason


def test_refusals_get_one_fresh_reservation_then_backoff_then_a_person() -> None:
    err = http(Where.STORAGE, 403, code="SignatureDoesNotMatch", message="bad signature")
    outcomes = [after_refusal(n, err, n, lambda: 0.5).outcome
                for n in range(1, MAX_REFUSALS + 1)]
    assert outcomes == [Outcome.RERESERVE] + [Outcome.RETRY] * (MAX_REFUSALS - 2) + \
        [Outcome.FAIL]
    final = after_refusal(MAX_REFUSALS, err, 9)
    assert "SignatureDoesNotMatch" in final.reason and "bad signature" in final.reason
    assert MAX_REFUSALS <= 4  # never more than 4 captures in a row for one file


def test_unusable_reservations_back_off_from_the_first() -> None:
    err = TransferError(Where.API, Kind.MALFORMED, "no upload_fields")
    assert after_refusal(1, err, 1, lambda: 0.5).outcome is Outcome.RETRY
    assert after_refusal(MAX_REFUSALS, err, 4).outcome is Outcome.FAIL
