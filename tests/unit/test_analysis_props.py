"""Issue 32: the follower's schedule and pace, as properties. Never above max_rate; no gap
between two looks over 10 minutes; every capture final by follow_for; the first look no later
than 15 s after the upload."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from daemon.analysis import schedule
from daemon.analysis.schedule import Answer, Verdict
from daemon.net.pace import Pace

answers = st.one_of(
    st.builds(Answer, capture=st.sampled_from(["processing", "awaiting_upload"])),
    st.builds(Answer, http=st.sampled_from([None, 429, 500, 502, 503]),
              retry_after=st.one_of(st.none(), st.floats(0, 3600)), reason=st.just("x")))


@given(st.floats(0.01, 50), st.lists(st.floats(0, 5), min_size=1, max_size=200))
def test_never_above_max_rate(rate: float, gaps: list[float]) -> None:
    """However requests arrive, any one-second window holds at most `rate` of them (its
    ceiling, for a fractional rate), and any longer window at most rate x its length + 1."""
    pace, now, starts = Pace(rate, clock=lambda: 0.0), 0.0, []
    for g in gaps:
        now += g
        starts.append(pace.slot(now))
    assert starts == sorted(starts) and all(s >= 0 for s in starts)
    for i, s in enumerate(starts):
        within = [t for t in starts[i:] if t < s + 1.0 - 1e-9]
        assert len(within) <= math.ceil(rate - 1e-9)
        assert len(starts) - i <= rate * (starts[-1] - s) + 1 + 1e-6


@given(st.floats(0, 1e9), st.floats(60, 30 * 86400), st.lists(answers, max_size=400),
       st.lists(st.floats(0, 120), max_size=400))
def test_no_gap_over_ten_minutes_and_final_by_follow_for(
        uploaded: float, follow_for: float, seen: list[Answer], late: list[float]) -> None:
    """Each look's answer decides the next; looks come when due (or a little late). No gap
    the schedule plans is over MAX_GAP, unless the server asked for longer (Retry-After);
    the capture is final by the deadline's look."""
    deadline = uploaded + follow_for
    at = schedule.first_look(uploaded, deadline)
    assert at - uploaded <= 15.0 + 1e-6  # float rounding of the sum
    for i in range(10_000):
        answer = seen[i] if i < len(seen) else Answer(capture="processing")
        now = at + (late[i] if i < len(late) else 0.0)
        step = schedule.decide(answer, now, i + 1, deadline, follow_for)
        if step.verdict is Verdict.FINAL:
            assert step.status == "unknown" and now >= deadline and step.error
            return
        assert step.verdict is Verdict.AGAIN and step.next_at is not None
        assert now < step.next_at <= deadline or step.next_at == deadline
        wanted = answer.retry_after or 0.0
        assert step.next_at - now <= max(schedule.MAX_GAP, wanted) + 1e-6
        at = step.next_at
    raise AssertionError("never final")


@given(st.sampled_from(["completed", "error"]), st.floats(0, 1e6), st.integers(1, 100))
def test_a_final_answer_is_final_at_once(capture: str, now: float, looks: int) -> None:
    step = schedule.decide(Answer(capture=capture, error="e", fps=240.0), now, looks,
                           now + 10, 86400)
    assert step.verdict is Verdict.FINAL and step.status == capture


@given(st.sampled_from([401, 403]), st.floats(0, 1e6))
def test_refused_key_pauses_and_is_never_final(http: int, now: float) -> None:
    assert schedule.decide(Answer(http=http), now, 3, now - 1, 86400).verdict is Verdict.PAUSE


@given(st.one_of(st.floats(0.01, 10_000), st.just(math.inf)), st.floats(1, 3600),
       st.integers(1, 5000))
def test_a_round_claims_no_more_than_it_can_read_within_half_its_lease(
        rate: float, lease: float, most: int) -> None:
    """A round whose captures are all absent from the list pages reads each by id at
    `max_rate`: that must end within half the lease (else a fleet's other node takes them
    over and reads them again), and a round claims at least one and at most `most`."""
    n = schedule.claim_size(rate, lease, most)
    assert 1 <= n <= most
    if n > 1 and math.isfinite(rate):
        assert n / rate <= lease / 2
    if math.isfinite(rate) and lease / 2 * rate >= most:
        assert n == most  # a fast pace is not held back


def test_the_default_pace_claims_three_hundred_a_round() -> None:
    """2 reads/s for 150 s (half of the 300 s lease): 1,000 captures due take four rounds."""
    from daemon.jobs.analysis import LEASE

    assert schedule.claim_size(2.0, LEASE) == 300
