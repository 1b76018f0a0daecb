"""What went wrong, and what to do about it: one small pure function, `decide`."""

from __future__ import annotations

import errno
import random
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum


class Where(StrEnum):
    API = "api"  # POST /captures
    STORAGE = "storage"  # the pre-signed S3 POST
    FILE = "file"  # the file on local disk


class Kind(StrEnum):
    CONNECT = "connect"  # refused, reset, DNS
    TIMEOUT = "timeout"  # connect/read/write timed out, or the upload stalled
    PROTOCOL = "protocol"  # the connection broke mid-message
    HTTP = "http"  # an HTTP answer with an error status
    MALFORMED = "malformed"  # a 2xx answer we could not read
    VANISHED = "vanished"  # the file is gone
    ROOT_ABSENT = "root_absent"  # not found, but its watch folder is not there (unmounted)
    CHANGED = "changed"  # the file changed after it was queued
    NO_ATHLETE = "no_athlete"  # its folder is linked to no athlete as it is to be reserved
    UNREADABLE = "unreadable"  # permission denied, I/O error
    CERTIFICATE = "certificate"  # the server's TLS certificate is not trusted (service-wide)
    TOO_LARGE = "too_large"  # an answer larger than we accept
    TOO_SLOW = "too_slow"  # at the measured rate the file cannot be sent inside its window
    STATION = "station"  # the station ran out of open files: not the file's fault


class TransferError(Exception):
    """A failure, normalised so `decide` needs no knowledge of httpx or the OS."""

    def __init__(self, where: Where, kind: Kind, message: str, *, status: int | None = None,
                 code: str | None = None, retry_after: float | None = None,
                 server_time: float | None = None):
        super().__init__(message)
        self.where, self.kind, self.message = where, kind, message
        self.status, self.code, self.retry_after = status, code, retry_after
        self.server_time = server_time  # the answer's Date header, for clock-skew checks
        self.session_id: str | None = None  # the reservation an upload error belongs to
        self.lapsed = False  # our clock (plus skew) was past that reservation's expiry
        # Set where the caller already decided with more than `decide` knows (a lapse's count,
        # whether the file fits a window): outcomes apply it as it is, in its own words.
        self.decided: Decision | None = None
        # The upload's closing boundary was handed to the socket and no status line came back:
        # the endpoint may have stored the file. Never sent again before Uplift is asked.
        self.boundary_sent = False


# Out of descriptors (a flood of connections, a leak): the station's fault, never the file's.
STATION_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE})


def is_station_fault(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in STATION_ERRNOS


def station_reason(exc: OSError) -> str:
    return (f"the station ran out of open files ({exc.strerror or exc}); waiting files are "
            f"tried again")


def file_error(exc: OSError) -> TransferError:
    """A local file problem in a coach's words."""
    if is_station_fault(exc):
        return TransferError(Where.FILE, Kind.STATION, station_reason(exc))
    if isinstance(exc, FileNotFoundError):
        return TransferError(Where.FILE, Kind.VANISHED,
                             "the file was deleted or moved away before it was uploaded")
    return TransferError(Where.FILE, Kind.UNREADABLE,
                         f"the file cannot be read: {exc.strerror or exc}")


class Outcome(StrEnum):
    RETRY = "retry"  # transient: back to queued after `delay`
    RERESERVE = "rereserve"  # the upload window lapsed: reserve again now
    WAIT = "wait"  # the file fits a window only later (timetable, upload hours): until `delay`
    PAUSE = "pause"  # credentials or trust rejected: stop reserving for everyone for `delay`
    REFUSED = "refused"  # this capture was refused in a way a new one may fix: counted, bounded
    FAIL = "fail"  # this capture was refused, or the file is unusable: a person decides
    RESETTLE = "resettle"  # the file changed: back to pending, upload its final form
    GONE = "gone"  # the file is gone: end with a reason, no retry loop
    WAIT_ROOT = "wait_root"  # its watch folder is not there: the job waits until it is back
    WAIT_ATHLETE = "wait_athlete"  # no athlete for its folder: it waits (pending) for a link


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    delay: float = 0.0
    reason: str = ""


BASE_DELAY = 2.0
MAX_DELAY = 300.0
PAUSE_PROBE = 60.0
MAX_REFUSALS = 4  # captures created in a row for one file before a person must look
# Windows that lapsed: a few re-reservations within one claim, then rounds with growing
# backoff; a file whose windows lapsed MAX_LAPSES_IN_A_ROW times waits for a person.
MAX_LAPSES = 3
MAX_LAPSES_IN_A_ROW = 3 * MAX_LAPSES
LAPSE_BACKOFF = 30.0  # seconds before the second round, doubling (capped at MAX_DELAY)
CAPTURE_REJECTED = {400, 404, 409, 422}
# S3's own words for a slow client: transient, not this file's fault.
S3_TRANSIENT = {"RequestTimeout", "SlowDown", "InternalError", "ServiceUnavailable"}
S3_TOO_BIG = {"EntityTooLarge": "the file is larger than the upload endpoint accepts",
              "EntityTooSmall": "the file is smaller than the upload endpoint accepts"}


def backoff(attempt: int, jitter: float) -> float:
    """Exponential from BASE_DELAY, capped, with 'equal jitter' (half fixed, half random)."""
    # The exponent is clamped: 2.0 ** 1024 overflows (a station offline for days), and the cap
    # is reached long before 2 ** 32 anyway.
    raw = min(MAX_DELAY, BASE_DELAY * 2.0 ** min(32, max(0, attempt - 1)))
    return raw / 2 + raw / 2 * jitter


def is_policy_expired(error: TransferError) -> bool:
    return error.code == "AccessDenied" and "policy expired" in error.message.lower()


def decide(error: TransferError, attempt: int, rand: Callable[[], float] = random.random,
           lapsed: bool = False) -> Decision:
    """`attempt` counts from 1 for the first failure of this job in a row; `lapsed` says our
    clock (corrected by the skew learnt from the API) is past the reservation's expiry."""
    msg = error.message
    if error.where is Where.FILE:
        if error.kind is Kind.CHANGED:
            return Decision(Outcome.RESETTLE, reason=msg)
        if error.kind is Kind.VANISHED:
            return Decision(Outcome.GONE, reason=msg)
        if error.kind is Kind.ROOT_ABSENT:
            return Decision(Outcome.WAIT_ROOT, reason=msg)
        if error.kind is Kind.NO_ATHLETE:
            return Decision(Outcome.WAIT_ATHLETE, reason=msg)
        if error.kind is Kind.STATION:
            return _retry(error, attempt, rand)
        return Decision(Outcome.FAIL, reason=msg)
    if error.kind is Kind.CERTIFICATE:
        return Decision(Outcome.PAUSE, delay=PAUSE_PROBE, reason=msg)
    if error.kind is Kind.TOO_SLOW:
        return Decision(Outcome.FAIL, reason=msg)
    if error.where is Where.API and error.kind in (Kind.MALFORMED, Kind.TOO_LARGE):
        return Decision(Outcome.REFUSED, reason=msg)  # a capture may have been created
    status = error.status
    if error.kind is not Kind.HTTP or status is None:
        return _retry(error, attempt, rand)  # connection trouble, timeouts, stalls
    if error.where is Where.STORAGE:
        if 300 <= status < 400:  # a redirect that stored nothing (net/upload.py): bounded
            return Decision(Outcome.REFUSED, reason=msg)
        if status == 403:
            if lapsed or is_policy_expired(error):
                return Decision(Outcome.RERESERVE, reason=msg)
            return Decision(Outcome.REFUSED, reason=msg)
        if status in (408, 429) or status >= 500 or error.code in S3_TRANSIENT:
            return _retry(error, attempt, rand)
        if error.code in S3_TOO_BIG:
            return Decision(Outcome.FAIL, reason=f"{S3_TOO_BIG[error.code]} ({msg})")
        return Decision(Outcome.FAIL, reason=msg)
    if status in (401, 403):
        return Decision(Outcome.PAUSE, delay=PAUSE_PROBE, reason=msg)
    if status in (408, 429) or status >= 500:
        return _retry(error, attempt, rand)
    return Decision(Outcome.FAIL, reason=msg)


def after_refusal(refusals: int, error: TransferError, attempt: int,
                  rand: Callable[[], float] = random.random) -> Decision:
    """The `refusals`-th capture in a row that the endpoint would not take. A storage refusal
    gets one fresh reservation at once (its policy may have been bad); then growing backoff;
    after MAX_REFUSALS a person decides, with the server's words."""
    if refusals >= MAX_REFUSALS:
        return Decision(Outcome.FAIL, reason=f"{error.message} (refused {refusals} times in a "
                                              f"row; retry it once the cause is fixed)")
    if refusals == 1 and error.where is Where.STORAGE:
        return Decision(Outcome.RERESERVE, reason=error.message)
    return _retry(error, attempt, rand)


def after_lapse(lapses: int, in_claim: int, error: TransferError,
                rand: Callable[[], float] = random.random) -> Decision:
    """The `lapses`-th window in a row that ran out before its upload was through, the
    `in_claim`-th within this claim. A fresh reservation at once, up to MAX_LAPSES per claim;
    then the job backs off, longer each round; after MAX_LAPSES_IN_A_ROW a person decides."""
    if lapses >= MAX_LAPSES_IN_A_ROW:
        return Decision(Outcome.FAIL, reason=(
            f"the upload window ran out {lapses} times in a row before the upload was through "
            f"({error.message}); check the bandwidth limit and the connection, then retry it"))
    if in_claim < MAX_LAPSES:
        return Decision(Outcome.RERESERVE, reason=error.message)
    rounds = max(1, lapses // MAX_LAPSES)
    raw = min(MAX_DELAY, LAPSE_BACKOFF * 2 ** (rounds - 1))
    return Decision(Outcome.RETRY, delay=raw / 2 + raw / 2 * rand(),
                    reason=f"the upload window ran out {lapses} times in a row ({error.message})")


def _retry(error: TransferError, attempt: int, rand: Callable[[], float]) -> Decision:
    delay = backoff(attempt, rand())
    if error.retry_after is not None:
        delay = max(delay, error.retry_after)
    return Decision(Outcome.RETRY, delay=min(delay, MAX_DELAY), reason=error.message)
