"""What each decision does: `errors.decide` says what a failure means (pure); the table here
turns that into one store call and, where needed, a wake-up or a service-wide pause."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from daemon import logs
from daemon.config import Config
from daemon.config.hints import command
from daemon.errors import Decision, Kind, Outcome, TransferError, Where, after_refusal, decide
from daemon.jobs import left
from daemon.jobs.models import IN_FLIGHT, Job
from daemon.jobs.store import Store
from daemon.jobs.worker_writes import CHECKING
from daemon.net.api import ApiClient
from daemon.timeutil import local_clock
from daemon.work import finish, landed
from daemon.work.events import Events
from daemon.work.reservations import Reservations

INTERNAL_RETRY = 60.0
# The notice a service-wide pause sets, by what caused it; `status` shows it as ATTENTION.
PAUSE_NOTICE = {"credentials": "the API rejected our credentials ({reason}); all uploads "
                               "paused, checking again at {at}. Check the API token (see "
                               "`{check}`), then `systemctl reload uplift-capture`.",
                "certificate": "a server's certificate is not trusted ({reason}); all uploads "
                               "paused, checking again at {at}. If this network inspects TLS, "
                               "set [api] ca_file to its CA bundle and reload."}
log = logs.get("worker")
# uplift_capture_uploads_total{outcome}: a small fixed set, whatever the decision's detail.
METRIC_OUTCOME = {Outcome.FAIL: "failed", Outcome.RETRY: "retry", Outcome.RERESERVE: "retry",
                  Outcome.PAUSE: "retry", Outcome.REFUSED: "retry", Outcome.WAIT: "retry",
                  Outcome.RESETTLE: "interrupted", Outcome.GONE: "interrupted",
                  Outcome.WAIT_ROOT: "interrupted", Outcome.WAIT_ATHLETE: "interrupted"}


class Deciding(Protocol):
    """What carrying out a decision needs of the pipeline (pipeline.py passes itself)."""
    cfg: Config
    store: Store
    res: Reservations
    events: Events
    wall: Callable[[], float]
    rand: Callable[[], float]
    schedule: Callable[[float], None]


def apply(p: Deciding, job: Job, err: TransferError, bound: Any) -> None:
    d = err.decided or decide(err, job.attempts, p.rand, lapsed=err.lapsed)
    if d.outcome is Outcome.REFUSED:
        if err.session_id:
            p.store.reservation_ended(err.session_id, "refused")
        p.res.drop(job.id)
        refusals = p.store.count_refusal(job.claim, p.wall())
        d = after_refusal(refusals, err, job.attempts, p.rand)
        bound.warning("job.refused_by_endpoint", refusals=refusals, reason=err.message)
    TABLE[d.outcome](p, job, d, err, bound)
    p.events.upload_finished(METRIC_OUTCOME[d.outcome], 0, 0.0, p.wall())


def _retry(p: Deciding, job: Job, d: Decision, err: TransferError, bound: Any) -> None:
    delay = d.delay or 5.0
    now = p.wall()
    if d.outcome is Outcome.RERESERVE:  # a first storage refusal (lapses come decided)
        p.res.drop(job.id)
        delay = 0.0
    p.store.requeue(job.claim, IN_FLIGHT, now, due=now + delay,
                    reason=f"{d.reason}; retrying at {local_clock(now + delay, now)}")
    bound.warning("job.retry", reason=d.reason, delay=round(delay, 1))
    if err.where is Where.API:
        # The API is down or rate-limiting us: asking again for every queued job would only
        # add load. Hold all reservations for the same delay.
        p.res.pause(delay, d.reason)
    p.schedule(delay)


def _wait(p: Deciding, job: Job, d: Decision, err: TransferError, bound: Any) -> None:
    """The file fits a window only from a later time (a faster bandwidth period, upload
    hours): back to the queue until then, not counted as a failure."""
    p.res.drop(job.id)
    now = p.wall()
    p.store.requeue(job.claim, IN_FLIGHT, now, due=now + d.delay, count_attempt=False,
                    reason=d.reason)
    bound.info("job.waits_for_fit", reason=d.reason, delay=round(d.delay, 1))
    p.schedule(d.delay)


def _pause(p: Deciding, job: Job, d: Decision, err: TransferError, bound: Any) -> None:
    now = p.wall()
    name = "certificate" if err.kind == "certificate" else "credentials"
    p.res.drop(job.id)
    message = PAUSE_NOTICE[name].format(reason=d.reason, at=local_clock(now + d.delay, now),
                                        check=command("check", p.cfg.source))
    p.res.pause(d.delay, message, notice=name)
    p.store.requeue(job.claim, IN_FLIGHT, now, due=now, count_attempt=False, reason=message)
    p.store.set_notice(name, message, now + d.delay, now)
    p.events.notice(name, message)
    bound.error("api.credentials_rejected" if name == "credentials" else "net.untrusted",
                reason=d.reason)
    p.schedule(d.delay)


def _resettle(p: Deciding, job: Job, d: Decision, err: TransferError, bound: Any) -> None:
    p.res.drop(job.id)
    p.store.back_to_pending(job.claim, IN_FLIGHT, p.wall(), d.reason)
    bound.info("job.changed", reason=d.reason)
    p.events.resettle(job.path)


def _gone(p: Deciding, job: Job, d: Decision, err: TransferError, bound: Any) -> None:
    """The file is not at its path any more: moved (a rename, a folder renamed) or deleted.
    Not a failure: if it moved, the intake finds it at its new path and uploads it from there."""
    p.res.drop(job.id)
    p.store.skip(job.claim, IN_FLIGHT, p.wall(), left.VANISHED)
    bound.info("job.vanished", reason=d.reason)
    p.events.resettle(job.path)  # the watcher knew it there: seen there again, it is work


def _wait_root(p: Deciding, job: Job, d: Decision, err: TransferError, bound: Any) -> None:
    """Its watch folder is not there on this node (an unmounted share): the file is not gone.
    A node-local job waits pending (settled again once the folder is back); a shared one goes
    back to the queue for the fleet's other nodes (this node's claim leaves it alone)."""
    p.res.drop(job.id)
    now = p.wall()
    if job.watch != job.root:  # a shared watch (named), seen at this node's mount
        p.store.requeue(job.claim, IN_FLIGHT, now, due=now, count_attempt=False, reason=d.reason)
    else:
        p.store.back_to_pending(job.claim, IN_FLIGHT, now, d.reason)
    bound.warning("job.root_not_there", reason=d.reason)


def _wait_athlete(p: Deciding, job: Job, d: Decision, err: TransferError, bound: Any) -> None:
    """Its folder was unlinked before a capture was made: back to waiting for an athlete, as
    the intake holds such a file (the same reason, counted in `unknown_folders`), never failed.
    A new link pokes the intake, which settles it again."""
    p.res.drop(job.id)
    p.store.back_to_pending(job.claim, IN_FLIGHT, p.wall(), d.reason)
    bound.warning("job.held", reason=d.reason)


def _fail(p: Deciding, job: Job, d: Decision, err: TransferError, bound: Any) -> None:
    p.res.drop(job.id)
    # Our own decisions (a window the file cannot fit, lapses) are in their own words.
    plain = err.where is Where.FILE or err.decided is not None
    reason = d.reason if plain else f"the server refused it: {d.reason}"
    p.store.fail(job.claim, IN_FLIGHT, p.wall(), reason)
    p.events.failed(job.path, reason)
    bound.error("job.failed", reason=reason)


TABLE: dict[Outcome, Callable[[Deciding, Job, Decision, TransferError, Any], None]] = {
    Outcome.RETRY: _retry,
    Outcome.RERESERVE: _retry,
    Outcome.WAIT: _wait,
    Outcome.PAUSE: _pause,
    Outcome.RESETTLE: _resettle,
    Outcome.GONE: _gone,
    Outcome.WAIT_ROOT: _wait_root,
    Outcome.WAIT_ATHLETE: _wait_athlete,
    Outcome.FAIL: _fail,
}


def interrupted(p: Deciding, job: Job, bound: Any) -> None:
    p.res.drop(job.id)
    now = p.wall()
    p.store.requeue(job.claim, IN_FLIGHT, now, due=now, count_attempt=False,
                    reason="interrupted by a shutdown or a pause; it resumes when uploads do")
    bound.info("upload.interrupted")


def internal_error(p: Deciding, job: Job, exc: Exception) -> None:
    p.res.drop(job.id)
    now = p.wall()
    p.store.requeue(job.claim, IN_FLIGHT, now, due=now + INTERNAL_RETRY,
                    reason=f"internal error ({type(exc).__name__}); retrying")
    p.schedule(INTERNAL_RETRY)


def unsure(p: Deciding, job: Job, err: TransferError, bound: Any) -> None:
    """The closing boundary went out and no answer came: the endpoint may have the file. Back
    to the queue, to ask Uplift about the capture (`check`) before anything is sent again; the
    reservation is kept, to be used again if the upload did not land."""
    now = p.wall()
    p.store.requeue(job.claim, IN_FLIGHT, now, due=now, count_attempt=False, reason=CHECKING,
                    check_session_id=err.session_id)
    bound.warning("upload.answer_lost", session_id=err.session_id, reason=err.message)
    p.events.upload_finished("retry", 0, 0.0, now)
    p.schedule(0.0)


class Checking(Deciding, finish.Finishing, Protocol):
    """What asking Uplift about a lost answer needs (pipeline.py passes itself)."""
    api: ApiClient


def check(p: Checking, job: Job, bound: Any) -> bool:
    """A claimed job whose last upload's outcome is unknown: ask Uplift, then do what
    landed.decide_unknown says. True: the job may be sent (again) now; False: it ended here
    (done) or waits, queued, to ask again."""
    session_id = job.check_session_id
    if session_id is None:
        return True
    try:
        read = landed.Read(capture=p.api.get_capture(session_id).status)
    except TransferError as err:
        if decide(err, job.attempts, p.rand).outcome is Outcome.PAUSE:
            # Our credentials or a certificate refused: the service-wide pause and its
            # ATTENTION, as for a reservation (with no other job to reserve, nothing else
            # hears it). The question stays; it is asked again when uploads resume.
            apply(p, job, err, bound)
            return False
        read = landed.Read(http=err.status if err.kind is Kind.HTTP else None,
                           retry_after=err.retry_after)
        bound.warning("upload.check_failed", session_id=session_id, reason=err.message)
    now = p.wall()
    boundary = landed.boundary_at(job.boundary_sent_at, now)
    if boundary != job.boundary_sent_at:  # the clock went back since it was written
        assert boundary is not None
        p.store.boundary_from_now(job.claim, boundary)
        bound.warning("upload.boundary_ahead", boundary_sent_at=job.boundary_sent_at, now=now)
    since = None if boundary is None else now - boundary
    started = None if job.upload_started_at is None else now - job.upload_started_at
    settled = landed.decide_unknown(read, since, p.rand(), started)
    bound.info("upload.checked", session_id=session_id, capture=read.capture, http=read.http,
               verdict=str(settled.verdict))
    # A read that said nothing keeps the question open; the ATTENTION counts it from when
    # the question began (landed.unanswered).
    unanswered = settled.verdict is landed.Verdict.WAIT and read.capture != "awaiting_upload"
    began = boundary if boundary is not None else job.upload_started_at
    p.events.capture_read(job.id, (now if began is None else began) if unanswered else None)
    if settled.verdict is landed.Verdict.DONE:
        finish.landed(p, job, session_id, bound)
        return False
    if settled.verdict is landed.Verdict.WAIT:
        p.store.requeue(job.claim, IN_FLIGHT, now, due=now + settled.delay, count_attempt=False,
                        reason=CHECKING)
        p.schedule(settled.delay)
        return False
    if settled.verdict is landed.Verdict.RESERVE:  # gone at Uplift: its window is no use
        p.res.drop(job.id)
        p.store.reservation_ended(session_id, "abandoned")
    return True  # the reservation recorded next clears the question (record_reservation)
