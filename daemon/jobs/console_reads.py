"""Read queries the web console needs beyond `status`: one page of jobs (filtered by athlete
folder, state, node), the athletes seen, and the last hour's uploads for the chart. Plain read
transactions only (engine.read_tx): the console never takes the write lock."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import ColumnElement, and_, func, literal, or_, select

from daemon.jobs import engine as engine_mod
from daemon.jobs.models import Job, JobState
from daemon.jobs.reads import job_columns, load_job

# The order a person reads: what moves, what needs them, what waits, what is finished.
ORDER = (JobState.UPLOADING, JobState.RESERVED, JobState.FAILED, JobState.QUEUED,
         JobState.PENDING, JobState.DONE, JobState.SKIPPED)


@dataclass(frozen=True)
class Page:
    jobs: list[Job]
    total: int  # jobs matching the filter, all pages


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _filters(athlete: str | None, athlete_ids: Sequence[str], states: Iterable[str] | None,
             node: str | None) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if states is not None:
        where.append(Job.state.in_([str(s) for s in states]))
    if athlete:
        # A folder name (alias or UUID) under any watch root, or the UUID it stands for: a
        # pending job may not know its athlete yet, a queued one always does.
        folder = Job.path.like(Job.root + literal("/" + _like_escape(athlete) + "/%"),
                               escape="\\")
        where.append(or_(folder, Job.athlete_id.in_(list(athlete_ids))) if athlete_ids
                     else folder)
    if node:  # as Reads.jobs(node=): held or uploaded by it, or waiting for it (node-local)
        where.append(or_(Job.node == node, and_(Job.node.is_(None), Job.owner == node)))
    return where


def page(engine: Any, *, athlete: str | None = None, athlete_ids: Sequence[str] = (),
         states: Iterable[str] | None = None, node: str | None = None, page: int = 1,
         per_page: int = 50) -> Page:
    """One page of jobs, most urgent state first, newest first within a state. State by
    state, each from the (state, id) index: a page costs its own rows, not a sort of the
    whole table."""
    where = _filters(athlete, athlete_ids, None, node)
    wanted = ORDER if states is None else [s for s in ORDER if s in {str(x) for x in states}]
    jobs: list[Job] = []
    with engine_mod.read_tx(engine) as conn:
        per_state = dict(conn.execute(select(Job.state, func.count())
                                      .where(and_(True, *where)).group_by(Job.state)).all())
        skip, left = max(page - 1, 0) * per_page, per_page
        for state in wanted:
            n = int(per_state.get(state.value, 0))
            if skip >= n:
                skip -= n
                continue
            rows = conn.execute(select(*job_columns(conn))
                                .where(Job.state == state, *where).order_by(Job.id.desc())
                                .limit(left).offset(skip))
            jobs += [load_job(r) for r in rows]
            skip, left = 0, per_page - len(jobs)
            if left <= 0:
                break
        return Page(jobs, sum(int(per_state.get(s.value, 0)) for s in wanted))


def counts(engine: Any, *, athlete: str | None = None, athlete_ids: Sequence[str] = (),
           node: str | None = None) -> dict[str, int]:
    where = _filters(athlete, athlete_ids, None, node)
    with engine_mod.read_tx(engine) as conn:
        found = dict(conn.execute(select(Job.state, func.count()).where(and_(True, *where))
                                  .group_by(Job.state)).all())
    return {s.value: int(found.get(s.value, 0)) for s in JobState}


def athlete_ids(engine: Any) -> list[str]:
    """Every athlete a job has been queued for (the filter's choices, with the config's
    aliases)."""
    with engine_mod.read_tx(engine) as conn:
        return sorted(str(a) for a in conn.execute(select(Job.athlete_id).where(
            Job.athlete_id.is_not(None)).distinct()).scalars())


def uploads_since(engine: Any, since: float) -> Iterator[Mapping[str, Any]]:
    """Uploads that moved bytes after `since`: finished ones and the ones moving now, with
    start/end times and bytes (for the per-minute chart). Streamed: the first call after a
    start reads the whole hour, which need not sit in memory at once."""
    with engine_mod.read_tx(engine) as conn:
        rows = conn.execution_options(yield_per=500).execute(select(
            Job.id, Job.state, Job.size, Job.bytes_sent, Job.upload_started_at,
            Job.finished_at, Job.updated_at).where(or_(
                and_(Job.state == JobState.DONE, Job.finished_at >= since),
                Job.state == JobState.UPLOADING)))
        for r in rows:
            yield cast(Mapping[str, Any], r._mapping)
