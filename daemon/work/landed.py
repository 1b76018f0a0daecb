"""Did an upload whose answer was lost reach Uplift? The pure decision, from what
`GET /captures/{session_id}` said (uplift-api/captures.md) and how long ago the upload's closing
boundary went out. The reads and writes it leads to are in outcomes.py (`check`, `unsure`) and
finish.py (`landed`).

An upload's outcome is unknown when its closing boundary was handed to the socket and no status
line came back, or when a restart or a fleet takeover finds its job `uploading`. Such a job is
never sent again before Uplift has answered: `processing`, `completed` or `error` say the object
is stored (done, without a second upload); `awaiting_upload` says it is not, but is believed only
SETTLE_SECONDS after the boundary (an object stored a moment ago may not show yet); 404 says the
capture itself is gone (reserve afresh). A read that fails says nothing: the job waits; once
reads have failed ATTENTION_AFTER since the question began, a person is told (`unanswered`).
A status Uplift's reference does not list is such a failed read: the reference defines no
status beyond the four, so a new one is not proof the object is stored, and marking a capture
done that Uplift lacks loses it, where waiting (and saying so) loses nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from daemon.errors import MAX_DELAY
from daemon.timeutil import local_clock

SETTLE_SECONDS = 30.0  # `awaiting_upload` is believed this long after the boundary
FIRST_ASK, ASK_SHARE = 2.0, 0.25  # a failed read: ask again after a share of the time since
LANDED = frozenset({"processing", "completed", "error"})
LOST_ANSWER = "the answer was lost; Uplift has the capture"
ATTENTION_AFTER = 15 * 60.0  # reads failing this long after the boundary: tell a person
UNANSWERED = "capture_unanswered"  # the notice's name (status, console, alerts)


class Verdict(StrEnum):
    DONE = "done"  # Uplift has it: record done, never send it again
    WAIT = "wait"  # ask again after `delay`; nothing is sent meanwhile
    RESEND = "resend"  # it did not land: upload again (the same reservation while it holds)
    RESERVE = "reserve"  # the capture is gone at Uplift: a new reservation, then upload


@dataclass(frozen=True)
class Read:
    """What one GET /captures/{id} gave: the capture's `status` from a 200, or the HTTP
    status of an error answer (None with no answer at all), and its Retry-After."""
    capture: str | None = None
    http: int | None = None
    retry_after: float | None = None


@dataclass(frozen=True)
class Settled:
    verdict: Verdict
    delay: float = 0.0


def decide_unknown(read: Read, since_boundary: float | None, jitter: float,
                   since_start: float | None = None) -> Settled:
    """`since_boundary`: seconds since the closing boundary went out (None: it never did);
    `since_start`: since the upload started, which spaces failed reads when the boundary
    never went out (a restart or takeover mid-body); `jitter` in [0, 1) spreads the asks of
    many jobs. Never RESEND or RESERVE on a failed read."""
    since = None if since_boundary is None else max(0.0, since_boundary)
    if read.capture in LANDED:
        return Settled(Verdict.DONE)
    if read.capture == "awaiting_upload":
        if since is None or since >= SETTLE_SECONDS:
            return Settled(Verdict.RESEND)
        return Settled(Verdict.WAIT, SETTLE_SECONDS - since)
    if read.capture is None and read.http == 404:
        return Settled(Verdict.RESERVE)
    # No usable answer (5xx, a timeout, 401/403, 429, a capture we cannot read): ask again,
    # less often the longer it has been, as the server says when it says.
    # Without a boundary, from the upload's start: else every FIRST_ASK for the whole outage.
    elapsed = since if since is not None else max(0.0, since_start or 0.0)
    base = min(MAX_DELAY, max(FIRST_ASK, ASK_SHARE * elapsed))
    delay = base * (0.75 + 0.5 * jitter)
    if read.retry_after is not None:
        delay = max(delay, read.retry_after)
    return Settled(Verdict.WAIT, min(delay, MAX_DELAY))


def boundary_at(stored: float | None, now: float) -> float | None:
    """When the boundary went out, as far as this clock can tell: a stored time ahead of `now`
    (the clock was ahead when it was written, then set back) is taken as now, so the settle
    time runs from now instead of for as long as the jump."""
    return None if stored is None else min(stored, now)


def unanswered(waiting: Mapping[int, float], now: float) -> str | None:
    """The ATTENTION for jobs whose last capture read failed: `waiting` holds, per job, when
    its question began (the boundary, else the upload's start). Said once any has waited
    ATTENTION_AFTER, of those that have; None when none has. Worded to stay the same while
    nothing changes (no new notice, log line or alert as the minutes pass)."""
    overdue = [t for t in waiting.values() if now - t >= ATTENTION_AFTER]
    if not overdue:
        return None
    first, n = min(overdue), len(overdue)
    uploads = "1 upload" if n == 1 else f"{n} uploads"
    them = "it is" if n == 1 else "they are"
    return (f"Uplift has not said for over {ATTENTION_AFTER / 60:g} min (since "
            f"{local_clock(first, now)}) whether {uploads} arrived; {them} not sent again "
            f"until it does")
