"""`decide` and its helpers (errors.py), searched with Hypothesis: any error, any attempt
count (a station offline for days counts thousands), any jitter, any Retry-After."""

from __future__ import annotations

import errno
import itertools
import os

from hypothesis import example, given
from hypothesis import strategies as st

from daemon.errors import (
    BASE_DELAY,
    MAX_DELAY,
    MAX_REFUSALS,
    PAUSE_PROBE,
    STATION_ERRNOS,
    Decision,
    Kind,
    Outcome,
    TransferError,
    Where,
    after_lapse,
    after_refusal,
    backoff,
    decide,
    file_error,
)

jitters = st.floats(0.0, 1.0, exclude_max=True)
attempts = st.integers(-5, 10**6)
# What the HTTP layer may hand over: a date in the past gives a negative Retry-After.
retry_afters = st.one_of(st.none(), st.floats(-1e6, 1e9, allow_nan=False), st.just(float("inf")))
messages = st.text(min_size=1, max_size=80).filter(lambda s: s.strip())


@st.composite
def errors(draw: st.DrawFn) -> TransferError:
    kind = draw(st.sampled_from(Kind))
    status = draw(st.one_of(st.none(), st.integers(100, 599))) if kind is Kind.HTTP else None
    code = draw(st.one_of(st.none(), st.sampled_from(
        ["AccessDenied", "RequestTimeout", "SlowDown", "EntityTooLarge", "EntityTooSmall",
         "InternalError", "NoSuchBucket"]), st.text(max_size=10)))
    err = TransferError(draw(st.sampled_from(Where)), kind, draw(messages), status=status,
                        code=code, retry_after=draw(retry_afters))
    return err


def plain(d: Decision, error: TransferError) -> None:
    """Every decision says why, in the error's own words, and never waits a negative time."""
    assert isinstance(d.outcome, Outcome)
    assert 0.0 <= d.delay <= MAX_DELAY
    assert isinstance(d.reason, str) and error.message in d.reason


@given(attempts, jitters)
@example(1025, 0.0)  # 2 ** 1024 as a float: OverflowError before the exponent was clamped
@example(10**6, 0.999)
def test_backoff_is_never_negative_and_capped(attempt: int, jitter: float) -> None:
    delay = backoff(attempt, jitter)
    assert BASE_DELAY / 2 <= delay <= MAX_DELAY


@given(st.integers(1, 10**5), jitters)
def test_backoff_grows_until_its_cap(attempt: int, jitter: float) -> None:
    """The fixed half never shrinks from one attempt to the next; it doubles until the cap."""
    now, then = backoff(attempt, 0.0), backoff(attempt + 1, 0.0)
    assert then >= now
    assert then == MAX_DELAY / 2 or then == 2 * now
    # jitter only ever adds, up to doubling the fixed half
    assert now <= backoff(attempt, jitter) <= 2 * now


@given(errors(), attempts, jitters, st.booleans())
@example(TransferError(Where.API, Kind.CONNECT, "refused"), 1025, 0.5, False)
def test_every_error_gets_a_decision_with_a_plain_reason(
        error: TransferError, attempt: int, jitter: float, lapsed: bool) -> None:
    d = decide(error, attempt, lambda: jitter, lapsed)
    plain(d, error)
    if d.outcome is Outcome.PAUSE:
        assert d.delay == PAUSE_PROBE
    if d.outcome is not Outcome.RETRY and d.outcome is not Outcome.PAUSE:
        assert d.delay == 0.0  # only a retry or a pause waits


@given(errors(), attempts, jitters)
def test_retry_after_is_honoured_up_to_the_cap(error: TransferError, attempt: int,
                                               jitter: float) -> None:
    d = decide(error, attempt, lambda: jitter)
    if d.outcome is Outcome.RETRY:
        assert d.delay >= min(backoff(attempt, jitter), MAX_DELAY)
        if error.retry_after is not None:
            assert d.delay >= min(error.retry_after, MAX_DELAY)


@given(st.sampled_from(Where), st.sampled_from([Kind.CONNECT, Kind.TIMEOUT, Kind.PROTOCOL]),
       attempts, jitters)
def test_connection_trouble_off_the_disk_is_always_retried(where: Where, kind: Kind,
                                                           attempt: int, jitter: float) -> None:
    error = TransferError(where, kind, "it broke")
    d = decide(error, attempt, lambda: jitter)
    assert d.outcome is (Outcome.FAIL if where is Where.FILE else Outcome.RETRY)


@given(st.integers(1, 10**4), errors(), attempts, jitters)
def test_refusals_are_bounded_with_a_plain_reason(refusals: int, error: TransferError,
                                                  attempt: int, jitter: float) -> None:
    d = after_refusal(refusals, error, attempt, lambda: jitter)
    plain(d, error)
    if refusals >= MAX_REFUSALS:
        assert d.outcome is Outcome.FAIL and f"refused {refusals} times" in d.reason
    else:
        assert d.outcome in (Outcome.RETRY, Outcome.RERESERVE)


@given(st.integers(1, 10**4), st.integers(1, 10**4), errors(), jitters)
def test_lapses_always_decide_with_a_plain_reason(lapses: int, in_claim: int,
                                                  error: TransferError, jitter: float) -> None:
    d = after_lapse(lapses, in_claim, error, lambda: jitter)
    plain(d, error)
    assert d.outcome in (Outcome.FAIL, Outcome.RERESERVE, Outcome.RETRY)


@given(st.lists(jitters, min_size=2, max_size=40))
def test_a_run_of_failures_waits_longer_and_longer_up_to_the_cap(js: list[float]) -> None:
    delays = [decide(TransferError(Where.API, Kind.TIMEOUT, "slow"), n, lambda j=j: j).delay
              for n, j in enumerate(js, start=1)]
    assert all(b >= a / 2 for a, b in itertools.pairwise(delays))
    assert all(d <= MAX_DELAY for d in delays)


@given(st.sampled_from(sorted(STATION_ERRNOS)), st.sampled_from(sorted(set(errno.errorcode))),
       attempts, jitters)
def test_running_out_of_descriptors_is_never_the_files_fault(
        station: int, other: int, attempt: int, jitter: float) -> None:
    # Issue 30, item 1: files failed for good with "Too many open files" during a flood.
    error = file_error(OSError(station, os.strerror(station)))
    d = decide(error, attempt, lambda: jitter)
    assert d.outcome is Outcome.RETRY and d.delay > 0
    assert "station" in d.reason
    if other not in STATION_ERRNOS and other != errno.ENOENT:
        assert file_error(OSError(other, os.strerror(other))).kind is not Kind.STATION
