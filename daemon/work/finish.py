"""After the endpoint accepted an upload: write `done` (durable, retried while the job table cannot
be written), then the after-upload action, each on its recorder lane (recorder.py) so the slot
is already sending its next file. `accepted` is what the slot calls."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol

from sqlalchemy.exc import InterfaceError, OperationalError

from daemon.config import Config
from daemon.jobs.models import Job
from daemon.jobs.store import Store, TakenOver
from daemon.net.api import Reserved
from daemon.net.upload import Sent
from daemon.work import archive
from daemon.work.events import Events
from daemon.work.landed import LOST_ANSWER
from daemon.work.recorder import Recorder
from daemon.work.reservations import Reservations

DONE_RETRY = (0.5, 30.0)  # backoff for writing an accepted upload's outcome


class Accepted:
    """Accepted uploads whose `done` is not written yet, and those given up at shutdown."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: set[int] = set()
        self.unwritten: set[int] = set()  # the service exits non-zero when any are left
        self.archiving: set[int] = set()  # done, the after-upload action still queued

    def add(self, job_id: int) -> None:
        with self._lock:
            self._pending.add(job_id)

    def written(self, job_id: int, ok: bool) -> None:
        with self._lock:
            self._pending.discard(job_id)
            if ok:
                self.unwritten.discard(job_id)  # given up on at shutdown, then written
            else:
                self.unwritten.add(job_id)

    def to_archive(self, job_id: int) -> None:
        with self._lock:
            self.archiving.add(job_id)

    def archived(self, job_id: int) -> None:
        with self._lock:
            self.archiving.discard(job_id)

    def give_up(self) -> None:
        """Shutting down: what is still pending counts as unwritten."""
        with self._lock:
            self.unwritten |= self._pending
            self._pending.clear()


class Finishing(Protocol):
    """What finishing an accepted upload needs of the pipeline (pipeline.py passes itself)."""
    cfg: Config
    store: Store
    res: Reservations
    recorder: Recorder
    events: Events
    accepted: Accepted
    wall: Callable[[], float]
    on_db_error: Callable[[Exception | None], None]


def accepted(p: Finishing, job: Job, res: Reserved, sent: Sent, note: str | None,
             bound: Any) -> None:
    """On the slot: hand the bookkeeping over (or do it here once the lanes are stopped)."""
    p.accepted.add(job.id)
    bound.info("upload.accepted", session_id=res.session_id)
    if sent.oddity is not None:  # stored all the same: `done`, never sent again
        bound.warning("upload.odd_answer", session_id=res.session_id, reason=sent.oddity)
    p.recorder.hand(p.recorder.finishes, "done", _finish, p, job, res, sent, note, bound,
                    job_id=job.id, path=job.path)


def landed(p: Finishing, job: Job, session_id: str, bound: Any) -> None:
    """Uplift has the capture of an upload whose answer was lost: `done` (durable) without a
    second upload, then the after-upload action as for any upload."""
    p.store.finish(job.claim, None, p.wall(), LOST_ANSWER, landed=session_id,
                   follow_for=follow_for(p))
    p.events.uploaded()
    p.res.drop(job.id)
    p.events.upload_finished("done", job.size, 0.0, p.wall())
    bound.info("upload.done", session_id=session_id, note=LOST_ANSWER)
    if p.cfg.upload.after_upload != "keep":
        p.accepted.to_archive(job.id)
        p.recorder.hand(p.recorder.afters, "after_upload", _after_upload, p, job, bound,
                        job_id=job.id, path=job.path)


def follow_for(p: Finishing) -> float | None:
    """How long the capture is followed through Uplift's processing (None: not at all)."""
    return p.cfg.analysis.follow_for if p.cfg.analysis.follow else None


def _finish(p: Finishing, job: Job, res: Reserved, sent: Sent, note: str | None,
            bound: Any) -> None:
    outcome = "unwritten"
    try:
        if _write_done(p, job, sent, note, bound):
            outcome = "written"
    except TakenOver as exc:
        bound.warning("job.taken_over", reason=str(exc))
        outcome = "taken over"  # another node's job now: nothing of ours is left unwritten
    finally:
        p.accepted.written(job.id, outcome != "unwritten")
        p.res.drop(job.id)
    if outcome != "written":
        return
    p.events.upload_finished("done", sent.size, sent.seconds, p.wall())
    p.events.uploaded()
    p.res.learn_rate(sent.size, sent.seconds)
    bound.info("upload.done", session_id=res.session_id, etag=sent.etag,
               seconds=round(sent.seconds, 3), **({"note": note} if note else {}))
    if note is not None:
        # The file at its path is not the version uploaded (changed, or gone): looked at
        # again only now, so a changed file is a new job, not this one's version.
        p.events.resettle(job.path)
    if note is None and p.cfg.upload.after_upload != "keep":
        p.accepted.to_archive(job.id)
        p.recorder.hand(p.recorder.afters, "after_upload", _after_upload, p, job, bound,
                        job_id=job.id, path=job.path)


def _write_done(p: Finishing, job: Job, sent: Sent, note: str | None, bound: Any) -> bool:
    """The endpoint has the file: that must be written down, or it would be uploaded again.
    A job table that cannot be written (disk full, locked) is retried with backoff for as long
    as the process lives. False: shutting down with it unwritten; the service exits non-zero
    and the file goes once more after the restart."""
    delay = DONE_RETRY[0]
    while True:
        try:
            p.store.finish(job.claim, sent.etag, p.wall(), note, follow_for=follow_for(p))
            p.on_db_error(None)
            return True
        except (OperationalError, InterfaceError) as exc:  # the table, not the job: again
            p.on_db_error(exc)
            bound.error("job.done_unwritten", reason=str(exc.orig)[:200], retry_in=delay)
            if p.recorder.stopping.wait(delay):
                return False
            delay = min(DONE_RETRY[1], delay * 2)


def _after_upload(p: Finishing, job: Job, bound: Any) -> None:
    up = p.cfg.upload
    try:
        # Some time may have passed since the upload: a newer file that took the uploaded one's
        # place is a capture of its own, never moved or deleted (the watcher looks at it again).
        moved = archive.after_upload(up.after_upload, job.path, job.root, up.archive_dir,
                                     expect=(job.size, job.mtime_ns))
    except archive.ArchiveError as exc:
        p.store.set_archived(job.id, None, str(exc), p.wall())
        bound.warning("job.after_upload_failed", reason=str(exc))
        if str(exc) == archive.CHANGED:
            p.events.resettle(job.path)
        return
    finally:
        p.accepted.archived(job.id)
    if moved is not None:
        p.store.set_archived(job.id, moved, None, p.wall())
    bound.info("job.after_upload", action=up.after_upload, archived_path=moved)
