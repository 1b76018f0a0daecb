"""Issue 31: the decision for an upload whose answer was lost (work/landed.py), as properties:
answer x time since the boundary x read outcome -> done / wait / re-send / reserve. A failed
read never re-sends or reserves; `awaiting_upload` is believed only SETTLE_SECONDS after the
boundary; a stored capture is always done."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from daemon.errors import MAX_DELAY
from daemon.timeutil import local_clock
from daemon.work.landed import (
    ATTENTION_AFTER,
    LANDED,
    SETTLE_SECONDS,
    Read,
    Verdict,
    boundary_at,
    decide_unknown,
    unanswered,
)

since = st.one_of(st.none(), st.floats(-1e6, 1e7, allow_nan=False))
jitter = st.floats(0.0, 1.0, exclude_max=True)
statuses = st.sampled_from([None, 400, 401, 403, 408, 429, 500, 502, 503, 504, 200])
retry = st.one_of(st.none(), st.floats(0.0, 1e5, allow_nan=False))
failed = st.builds(Read, capture=st.none(), http=statuses, retry_after=retry) | st.builds(
    Read, capture=st.text(max_size=20).filter(lambda s: s not in LANDED | {"awaiting_upload"}),
    http=st.just(200), retry_after=retry)


@given(st.sampled_from(sorted(LANDED)), since, jitter)
def test_a_stored_capture_is_done(capture: str, s: float | None, j: float) -> None:
    assert decide_unknown(Read(capture=capture), s, j).verdict is Verdict.DONE


@given(failed, since, jitter)
def test_a_failed_read_waits_and_never_sends(read: Read, s: float | None, j: float) -> None:
    d = decide_unknown(read, s, j)
    assert d.verdict is Verdict.WAIT
    assert 0 < d.delay <= MAX_DELAY
    if read.retry_after is not None:
        assert d.delay >= min(read.retry_after, MAX_DELAY)


@given(since, jitter)
def test_awaiting_upload_is_believed_only_after_the_settle_time(s: float | None,
                                                                j: float) -> None:
    d = decide_unknown(Read(capture="awaiting_upload"), s, j)
    if s is None or s >= SETTLE_SECONDS:
        assert d.verdict is Verdict.RESEND
    else:
        assert d.verdict is Verdict.WAIT
        # Asked again no earlier than the settle time after the boundary, and no later.
        assert abs(max(0.0, s) + d.delay - SETTLE_SECONDS) < 1e-6


@given(since, jitter, retry)
def test_gone_at_uplift_reserves_afresh(s: float | None, j: float, r: float | None) -> None:
    assert decide_unknown(Read(http=404, retry_after=r), s, j).verdict is Verdict.RESERVE


@given(st.builds(Read, capture=st.one_of(st.none(), st.text(max_size=20)),
                 http=st.one_of(st.none(), st.integers(100, 599)), retry_after=retry),
       since, jitter)
def test_only_a_read_saying_so_sends_again(read: Read, s: float | None, j: float) -> None:
    d = decide_unknown(read, s, j)
    if d.verdict is Verdict.RESEND:
        assert read.capture == "awaiting_upload" and (s is None or s >= SETTLE_SECONDS)
    if d.verdict is Verdict.RESERVE:
        assert read.capture is None and read.http == 404
    if d.verdict is Verdict.DONE:
        assert read.capture in LANDED


@given(failed, st.floats(0.0, 1e7, allow_nan=False), jitter, jitter)
def test_failed_reads_space_out_from_the_start_when_no_boundary_went_out(
        read: Read, start: float, j: float, k: float) -> None:
    """A job left mid-body (no boundary) asks like one whose boundary went out when the upload
    started: not every FIRST_ASK for an outage's whole length."""
    without = decide_unknown(read, None, j, since_start=start)
    assert without == decide_unknown(read, start, j)
    later = decide_unknown(read, None, k, since_start=start * 2)
    assert later.delay >= without.delay * 0.75 / 1.25 - 1e-9


now_ = st.floats(1e9, 2e9, allow_nan=False)


@given(st.one_of(st.none(), st.floats(-1e10, 1e10, allow_nan=False)), now_)
def test_a_boundary_ahead_of_the_clock_is_taken_as_now(stored: float | None, now: float) -> None:
    b = boundary_at(stored, now)
    if stored is None:
        assert b is None
    else:
        assert b == (now if stored > now else stored)


@given(st.floats(0.0, 1e6, allow_nan=False), now_, jitter)
def test_awaiting_upload_after_a_boundary_ahead_waits_the_settle_time_from_now(
        ahead: float, now: float, j: float) -> None:
    """The clock was `ahead` when the boundary was written, then set back: the answer is
    believed SETTLE_SECONDS from now, never after as long as the jump."""
    b = boundary_at(now + ahead, now)
    assert b is not None
    d = decide_unknown(Read(capture="awaiting_upload"), now - b, j)
    assert d.verdict is Verdict.WAIT and d.delay == SETTLE_SECONDS
    later = now + d.delay + 1e-3  # asked again then, the written-back boundary read back
    assert decide_unknown(Read(capture="awaiting_upload"), later - b, j).verdict \
        is Verdict.RESEND


waits = st.dictionaries(st.integers(1, 10**6), st.floats(0.0, 1e5, allow_nan=False),
                        max_size=20)


@given(waits)
def test_the_attention_counts_the_jobs_waiting_long_enough_and_says_since_when(
        waiting: dict[int, float]) -> None:
    now = 1.7e9
    began = {j: now - ago for j, ago in waiting.items()}
    message = unanswered(began, now)
    overdue = [t for t in began.values() if now - t >= ATTENTION_AFTER]
    if not overdue:
        assert message is None
        return
    assert message is not None
    n = len(overdue)
    assert (f"whether {n} uploads arrived" if n > 1 else "whether 1 upload arrived") in message
    assert local_clock(min(overdue), now) in message
    assert "not sent again until it does" in message
    # The same waits, a moment later, say the same words: no new notice as minutes pass.
    if all(now - t >= ATTENTION_AFTER or now + 30 - t < ATTENTION_AFTER for t in began.values()):
        assert unanswered(began, now + 30) == message


@given(waits)
def test_no_attention_before_reads_failed_for_the_time(waiting: dict[int, float]) -> None:
    now = 1.7e9
    began = {j: now - min(ago, ATTENTION_AFTER - 1.0) for j, ago in waiting.items()}
    assert unanswered(began, now) is None
