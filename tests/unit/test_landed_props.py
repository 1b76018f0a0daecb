"""Issue 31: the decision for an upload whose answer was lost (work/landed.py), as properties:
answer x time since the boundary x read outcome -> done / wait / re-send / reserve. A failed
read never re-sends or reserves; `awaiting_upload` is believed only SETTLE_SECONDS after the
boundary; a stored capture is always done."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from daemon.errors import MAX_DELAY
from daemon.work.landed import LANDED, SETTLE_SECONDS, Read, Verdict, decide_unknown

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
