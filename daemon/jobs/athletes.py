"""The athlete directory in the job table (migration 0007): reads, writes, and the waiting
files it concerns. On PostgreSQL the table is the fleet's: a change NOTIFYs every node, which
looks at its waiting files again (jobs/listen.py on ATHLETES_CHANNEL).

A new capture is for the folder's link as its reservation is made (directory.at_reservation,
work/athlete.py), whatever was read when the file was queued. A changed link also sends its
folder's queued jobs back to be settled again (their twins and session groups follow the
athlete). A capture that exists at Uplift (uploading, or reserved with its capture made) keeps
the athlete it was made for (logged). Files already uploaded are never touched. The rules (what
a folder name, a UUID, a CSV is) are in directory.py.
"""

from __future__ import annotations

import threading
import time
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, func, or_, select

from daemon import logs
from daemon.jobs import engine as engine_mod
from daemon.jobs import schema
from daemon.jobs.directory import Link, hold_folder, nfc
from daemon.jobs.models import IN_FLIGHT, AthleteLink, Job, JobState

log = logs.get("athletes")
NEED = "0007"
CACHE_SECONDS = 5.0  # the watcher's copy; a poke or NOTIFY drops it at once
UNKNOWN_LIKE = "folder '%' is not an athlete UUID%"  # layout.place's hold reason


@dataclass
class Changed:
    """What a write did to jobs: queued ones sent back to be settled with the new link, and
    ones whose capture exists at Uplift, which keep the athlete it was made for."""

    requeued: list[int] = field(default_factory=list)
    kept: list[tuple[int, str]] = field(default_factory=list)  # (job id, athlete id)


class AthleteTable:
    """Reads and writes of `athletes`; `store` is a jobs.store.Store."""

    def __init__(self, store: Any):
        self.store = store

    def available(self) -> bool:
        return schema.has(self.store.engine, NEED)

    def links(self) -> list[Link]:
        with self.store._read() as conn:
            rows = conn.execute(select(*AthleteLink.__table__.columns)
                                .order_by(AthleteLink.folder))
            return [Link(r.folder, r.athlete_id, r.name, "table", r.set_by, r.set_where,
                         r.set_at) for r in rows]

    def table_map(self) -> dict[str, str]:
        with self.store._read() as conn:
            return {r.folder: r.athlete_id for r in conn.execute(
                select(AthleteLink.folder, AthleteLink.athlete_id))}

    def link_of(self, folder: str) -> dict[str, str]:
        """One folder's link as it stands now ({folder (NFC): athlete UUID}, or {}): what a
        reservation is made with. A name that is not UTF-8 cannot be linked (folder_name)."""
        folder = nfc(folder)
        try:
            folder.encode("utf-8")
        except UnicodeEncodeError:
            return {}
        if not self.available():
            return {}
        with self.store._read() as conn:
            found = conn.execute(select(AthleteLink.athlete_id).where(
                AthleteLink.folder == folder)).scalar()
        return {} if found is None else {folder: found}

    def put(self, links: Iterable[Link], by: str, where: str, now: float) -> Changed:
        """Link each folder (insert or replace), all in one transaction."""
        changed = Changed()
        with self.store.guard.write() as conn:
            ins = engine_mod.insert_for(conn)
            for x in links:
                old = conn.execute(select(AthleteLink.athlete_id).where(
                    AthleteLink.folder == x.folder)).scalar()
                values = {"athlete_id": x.athlete_id, "name": x.name, "set_by": by,
                          "set_where": where, "set_at": now}
                conn.execute(ins(AthleteLink).values(folder=x.folder, **values)
                             .on_conflict_do_update(index_elements=[AthleteLink.folder],
                                                    set_=values))
                if old != x.athlete_id:
                    self._relook(conn, x.folder, x.athlete_id, now, changed)
            engine_mod.notify_athletes(conn)
        return changed

    def remove(self, folder: str, now: float) -> Changed | None:
        """Unlink a folder: None when it was not linked. Uploaded files are not touched."""
        changed = Changed()
        with self.store.guard.write() as conn:
            gone = conn.execute(delete(AthleteLink).where(AthleteLink.folder == nfc(folder)))
            if not gone.rowcount:
                return None
            self._relook(conn, nfc(folder), None, now, changed)
            engine_mod.notify_athletes(conn)
        return changed

    def _relook(self, conn: Any, folder: str, athlete: str | None, now: float,
                changed: Changed) -> None:
        under = self._under(folder)
        for job_id in conn.execute(select(Job.id).where(under, Job.state == JobState.QUEUED)
                                   ).scalars():
            self.store.guard.move(conn, job_id, [JobState.QUEUED], JobState.PENDING, now,
                             last_error=f"the athlete of folder '{folder}' changed; looked at "
                                        f"again")
            changed.requeued.append(job_id)
        # Claimed jobs whose capture is not made yet take the new link at their reservation.
        for row in conn.execute(select(Job.id, Job.athlete_id).where(
                under, Job.state.in_([str(s) for s in IN_FLIGHT]),
                Job.session_id.is_not(None))):
            if row.athlete_id != athlete:
                changed.kept.append((row.id, row.athlete_id))
                log.info("athletes.kept", job_id=row.id, folder=folder,
                         athlete_id=row.athlete_id,
                         reason="its capture exists; it keeps the athlete it was made for")

    @staticmethod
    def _under(folder: str) -> Any:
        """Jobs whose path below the watch root starts with the folder (as NFC or NFD)."""
        forms = {folder, unicodedata.normalize("NFD", folder)}
        return or_(*(func.substr(Job.rel_path, 1, len(f) + 1) == f + "/" for f in forms))

    def unknown_folders(self) -> list[dict[str, Any]]:
        """Folders whose files wait because no athlete is linked: an aggregate over every
        waiting job (folder, files, oldest), folders compared in NFC."""
        return unknown_folders(self.store)


def unknown_folders(store: Any) -> list[dict[str, Any]]:
    """As AthleteTable.unknown_folders; works on any schema revision (only `jobs` is read)."""
    with store._read() as conn:
        rows = conn.execute(select(Job.last_error, func.count(), func.min(Job.created_at))
                            .where(Job.state == JobState.PENDING,
                                   Job.last_error.like(UNKNOWN_LIKE))
                            .group_by(Job.last_error)).all()
    out: dict[str, dict[str, Any]] = {}
    for reason, files, oldest in rows:
        folder = hold_folder(reason)
        if folder is None:
            continue
        entry = out.setdefault(nfc(folder), {"folder": nfc(folder), "files": 0,
                                             "oldest": oldest})
        entry["files"] += int(files)
        entry["oldest"] = min(entry["oldest"], oldest)
    return sorted(out.values(), key=lambda e: (e["oldest"], e["folder"]))


class Directory:
    """The watcher's copy of the table's links (folder -> athlete UUID), read again after
    CACHE_SECONDS or at once after `forget()` (a poke, a NOTIFY). A table that cannot be read
    (older schema, the database away) gives the last copy."""

    def __init__(self, store: Any, clock: Callable[[], float] = time.monotonic):
        self.table = AthleteTable(store)
        self.clock = clock
        self._lock = threading.Lock()
        self._copy: dict[str, str] = {}
        self._read_at: float | None = None

    def forget(self) -> None:
        with self._lock:
            self._read_at = None

    def links(self) -> dict[str, str]:
        now = self.clock()
        with self._lock:
            if self._read_at is not None and now - self._read_at < CACHE_SECONDS:
                return self._copy
        try:
            copy = self.table.table_map() if self.table.available() else {}
        except Exception as exc:  # the database away: the watcher's own writes say so
            log.warning("athletes.unreadable", reason=str(exc)[:200])
            return self._copy
        with self._lock:
            self._copy, self._read_at = copy, now
        return copy
