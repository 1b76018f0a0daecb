"""What went wrong, and what to do about it: one small pure function, `decide`."""

from __future__ import annotations

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
    CHANGED = "changed"  # the file changed after it was queued
    UNREADABLE = "unreadable"  # permission denied, I/O error


class TransferError(Exception):
    """A failure, normalised so `decide` needs no knowledge of httpx or the OS."""

    def __init__(self, where: Where, kind: Kind, message: str, *, status: int | None = None,
                 code: str | None = None, retry_after: float | None = None,
                 server_time: float | None = None):
        super().__init__(message)
        self.where, self.kind, self.message = where, kind, message
        self.status, self.code, self.retry_after = status, code, retry_after
        self.server_time = server_time  # the answer's Date header, for clock-skew checks


def file_error(exc: OSError) -> TransferError:
    """A local file problem in a coach's words."""
    if isinstance(exc, FileNotFoundError):
        return TransferError(Where.FILE, Kind.VANISHED,
                             "the file was deleted or moved away before it was uploaded")
    return TransferError(Where.FILE, Kind.UNREADABLE,
                         f"the file cannot be read: {exc.strerror or exc}")


class Outcome(StrEnum):
    RETRY = "retry"  # transient: back to queued after `delay`
    RERESERVE = "rereserve"  # the upload window lapsed: reserve again now
    PAUSE = "pause"  # credentials rejected: stop reserving for everyone, probe after `delay`
    FAIL = "fail"  # this capture was refused, or the file is unusable: a person decides
    RESETTLE = "resettle"  # the file changed: back to pending, upload its final form
    GONE = "gone"  # the file is gone: end with a reason, no retry loop


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    delay: float = 0.0
    reason: str = ""


BASE_DELAY = 2.0
MAX_DELAY = 300.0
PAUSE_PROBE = 60.0
CAPTURE_REJECTED = {400, 404, 409, 422}


def backoff(attempt: int, jitter: float) -> float:
    """Exponential from BASE_DELAY, capped, with 'equal jitter' (half fixed, half random)."""
    raw = min(MAX_DELAY, BASE_DELAY * 2 ** max(0, attempt - 1))
    return raw / 2 + raw / 2 * jitter


def decide(error: TransferError, attempt: int,
           rand: Callable[[], float] = random.random) -> Decision:
    """`attempt` counts from 1 for the first failure of this job in a row."""
    msg = error.message
    if error.where is Where.FILE:
        if error.kind is Kind.CHANGED:
            return Decision(Outcome.RESETTLE, reason=msg)
        if error.kind is Kind.VANISHED:
            return Decision(Outcome.GONE, reason=msg)
        return Decision(Outcome.FAIL, reason=msg)
    status = error.status
    if error.kind is Kind.HTTP and status is not None:
        if error.where is Where.STORAGE and status == 403:
            # "Policy expired" (or a policy the endpoint no longer accepts): a new one fixes it.
            return Decision(Outcome.RERESERVE, reason=msg)
        if error.where is Where.API and status in (401, 403):
            return Decision(Outcome.PAUSE, delay=PAUSE_PROBE, reason=msg)
        if status == 429 or status >= 500:
            return _retry(error, attempt, rand)
        if status in CAPTURE_REJECTED or 400 <= status < 500:
            return Decision(Outcome.FAIL, reason=msg)
    # connection trouble, timeouts, stalls, broken or unreadable answers
    return _retry(error, attempt, rand)


def _retry(error: TransferError, attempt: int, rand: Callable[[], float]) -> Decision:
    delay = backoff(attempt, rand())
    if error.retry_after is not None:
        delay = max(delay, error.retry_after)
    return Decision(Outcome.RETRY, delay=min(delay, MAX_DELAY), reason=error.message)
