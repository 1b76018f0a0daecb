"""When to look at a followed capture, and what a look's answer means: pure decisions.

The first look comes FIRST_LOOK seconds after the upload; each look that finds the capture
still processing (or cannot ask: 5xx, a network error, 429) waits twice as long as the one
before, never more than MAX_GAP, and never past the deadline (`[analysis] follow_for` after the
upload). The look at the deadline is the last: a capture still not final then ends `unknown`.
A Retry-After is honoured (up to the deadline). 401/403 is not the capture's answer: the
follower pauses (PAUSE), the capture keeps its turn.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

FIRST_LOOK = 15.0  # seconds after the upload
MAX_GAP = 600.0  # never longer between two looks
FINAL = ("completed", "error", "gone", "unknown")
MOST = 1000  # captures claimed in one round at most
STATUSES = ("processing", *FINAL)


class Verdict(StrEnum):
    FINAL = "final"  # write the status: not followed any more
    AGAIN = "again"  # still processing (or not asked): look again at `next_at`
    PAUSE = "pause"  # the key was refused: no capture is asked until the pause ends


@dataclass(frozen=True)
class Answer:
    """What one look found: the capture's `status` (and its `error`, `fps_detected`) from a
    200, or the HTTP status of an error answer (None: no answer at all), its Retry-After and
    our reason when it failed."""
    capture: str | None = None
    error: str | None = None
    fps: float | None = None
    http: int | None = None
    retry_after: float | None = None
    reason: str | None = None


@dataclass(frozen=True)
class Step:
    verdict: Verdict
    status: str = "processing"
    error: str | None = None
    fps: float | None = None
    next_at: float | None = None


def first_look(uploaded_at: float, deadline: float) -> float:
    return min(deadline, uploaded_at + FIRST_LOOK)


def gap(looks: int) -> float:
    """The wait after the `looks`-th look (1 = the first) found nothing final."""
    return min(MAX_GAP, FIRST_LOOK * 2.0 ** min(max(looks, 1), 32))


def next_look(now: float, looks: int, deadline: float,
              retry_after: float | None = None) -> float:
    wait = gap(looks)
    if retry_after is not None:
        wait = max(wait, retry_after)
    return min(deadline, now + wait)


def decide(answer: Answer, now: float, looks: int, deadline: float, follow_for: float) -> Step:
    """`looks`: this look's number (1 = the first); `deadline`: when following ends."""
    if answer.capture == "completed":
        return Step(Verdict.FINAL, "completed", None, answer.fps)
    if answer.capture == "error":
        return Step(Verdict.FINAL, "error", answer.error, answer.fps)
    if answer.capture is None and answer.http == 404:
        return Step(Verdict.FINAL, "gone", "the capture was deleted at Uplift")
    if answer.capture is None and answer.http in (401, 403):
        return Step(Verdict.PAUSE)
    if now >= deadline:
        hours = follow_for / 3600.0
        span = f"{hours:g} h" if hours >= 1 else f"{follow_for / 60.0:g} min"
        why = "still processing at Uplift" if answer.capture is not None else \
            f"Uplift could not be asked ({answer.reason or 'no answer'})"
        return Step(Verdict.FINAL, "unknown",
                    f"{why} {span} after the upload; not followed any more")
    return Step(Verdict.AGAIN, next_at=next_look(now, looks, deadline, answer.retry_after))


def claim_size(max_rate: float, lease: float, most: int = MOST) -> int:
    """How many captures one round may claim: all of them may be read one by one at
    `max_rate` within half the `lease`, so a round never outlasts its claim (a fleet's other
    nodes would take the captures over and read them a second time)."""
    if not math.isfinite(max_rate):
        return most
    return max(1, min(most, int(lease / 2 * max_rate)))
