"""The athlete a new capture is for, found as its reservation is made: the folder's link as it
stands then (the config's [athletes] over the table's, read afresh), not the one read when the
file was queued. That one may be stale: the intake reads the link before the slow movie read,
and a claimed job goes back to the queue without a capture (an API 5xx, `pause --now`, a
shutdown, a restart, a fit wait) while links change. A capture that exists at Uplift keeps its
athlete: a reservation reused from the cache never comes here.

The decision is directory.at_reservation (pure); this is its edge: read, write, raise."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from daemon.config import Config
from daemon.errors import Kind, TransferError, Where
from daemon.jobs import directory
from daemon.jobs.athletes import AthleteTable
from daemon.jobs.models import Job
from daemon.jobs.store import Store
from daemon.timeutil import parse_iso


def settle(cfg: Config, store: Store, job: Job, now: float, bound: Any) -> None:
    """Set the claimed `job`'s athlete and session group to what its new capture is for,
    written to the table when they changed; TransferError (NO_ATHLETE) with the intake's own
    reason when its folder is linked to no athlete now."""
    folder = directory.job_folder(job.rel_path)
    table = {} if folder is None else AthleteTable(store).link_of(folder)
    athletes = directory.mapping(cfg.athletes, table)
    queued = directory.Athlete(job.athlete_id, job.session_group_id) \
        if job.athlete_id and job.session_group_id else None
    got = directory.at_reservation(job.rel_path, athletes, _local_day(job), str(cfg.source),
                                   queued)
    if isinstance(got, directory.Waiting):
        raise TransferError(Where.FILE, Kind.NO_ATHLETE, got.reason)
    if got == queued:
        return
    store.set_athlete(job.claim, got.athlete_id, got.session_group_id, now)
    bound.info("job.athlete_changed", was=job.athlete_id, athlete_id=got.athlete_id,
               session_group_id=got.session_group_id)
    job.athlete_id, job.session_group_id = got.athlete_id, got.session_group_id


def _local_day(job: Job) -> date:
    """The day its session group is of, as classify found it (capture_time holds that moment,
    to the millisecond, rounded down: the same local day)."""
    taken = parse_iso(job.capture_time) if job.capture_time else job.mtime_ns / 1e9
    return datetime.fromtimestamp(taken).date()
