"""What the console reads and does, behind one small interface: the app knows nothing of the
database, so tests and the daemon hand it the same StoreBackend over a real Store."""

from __future__ import annotations

import math
import socket
import time
from collections.abc import Callable, Mapping
from pathlib import PurePath
from typing import TYPE_CHECKING, Any, Protocol, cast

from daemon import status
from daemon.analysis.results import describe
from daemon.jobs import console_reads, directory, schema
from daemon.jobs.athletes import AthleteTable, unknown_folders
from daemon.jobs.directory import Invalid, Link
from daemon.jobs.models import JobState
from daemon.service import control
from daemon.web import words
from daemon.web.history import History

if TYPE_CHECKING:
    from daemon.jobs.store import Store

# Words the page's state filter accepts besides the job states themselves.
STATE_GROUPS: dict[str, tuple[str, ...]] = {
    "moving": (JobState.RESERVED, JobState.UPLOADING),
    "waiting": (JobState.PENDING, JobState.QUEUED),
}


class FromConfig(Invalid):
    """A folder the config's [athletes] names: changed only there."""


class Backend(Protocol):
    def status(self, athlete: str | None, node: str | None, state: str | None,
               page: int | None, per_page: int) -> dict[str, Any]:
        """No filter and page None: `status --json`'s document; else one page of it."""

    def retry(self, job_id: int) -> bool: ...

    def retry_failed(self) -> int: ...

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    def health(self) -> tuple[bool, str]: ...

    def history(self, now: float) -> dict[str, Any]: ...

    def athletes(self) -> dict[str, Any]: ...

    def link(self, folder: str, athlete_id: str, name: str | None, client: str) -> Link: ...

    def unlink(self, folder: str) -> bool: ...


class StoreBackend:
    """The console over a Store. `health`: the service's own verdict (watching, database);
    `gate_reason`: why no upload may start now (the same words as `status`)."""

    def __init__(self, store: Any, cfg_aliases: Mapping[str, str],
                 health: Callable[[], tuple[bool, str]] | None = None,
                 gate_reason: Callable[[], str | None] | None = None,
                 runtime: Callable[[], dict[str, Any]] | None = None,
                 on_change: Callable[[], None] | None = None, lease: float = 30.0):
        self.store = store
        self.directory = AthleteTable(store)
        self.lease = lease  # [node] lease_seconds: a node silent longer is shown not alive
        self.aliases = dict(cfg_aliases)  # folder alias -> athlete UUID
        self._names = {uuid.lower(): alias for alias, uuid in self.aliases.items()}
        self._health = health
        self._gate_reason = gate_reason or self._gate
        self._runtime = runtime or (lambda: {})
        # After a retry, pause or resume: the daemon looks again at once (wakes its upload
        # slots, settles re-pending files) instead of at its next poll.
        self._on_change = on_change or (lambda: None)
        self._history = History(lambda since: console_reads.uploads_since(store.engine, since))

    # ---- reads ---------------------------------------------------------------------------

    def status(self, athlete: str | None = None, node: str | None = None,
               state: str | None = None, page: int | None = None,
               per_page: int = 50) -> dict[str, Any]:
        """No filter and no page: exactly `status --json`'s document. Otherwise one page of
        it, with "page", "pages", "total", the filter's counts and the athletes to choose."""
        now = status.now_of(self.store)  # liveness and due times: the fleet's clock
        gate = self._gate_reason()
        if page is None and not (athlete or node or state):
            return status.collect(self.store, now=now, runtime=self._runtime(),
                                  gate_reason=gate, lease=self.lease, athletes=self.aliases)
        return self._page(athlete, node, state, max(page or 1, 1), per_page, now, gate)

    def _page(self, athlete: str | None, node: str | None, state: str | None, page: int,
              per_page: int, now: float, gate: str | None) -> dict[str, Any]:
        per_page = min(max(per_page, 1), 500)
        links = self._links()
        self._shown = {x.athlete_id: x.name or x.folder for x in links}
        ids = self._athlete_ids(athlete, links)
        states = self._states(state)
        found = console_reads.page(self.store.engine, athlete=athlete, athlete_ids=ids,
                                   states=states, node=node, page=page, per_page=per_page)
        # status.collect over just this page's jobs: the console and `status` use the same
        # words and reasons whatever status.py grows; then back to the page's order.
        view = cast("Store", _PageView(self.store, found.jobs))  # the Store's reads, this page
        doc = status.collect(view, include_all=True, now=now,
                             runtime=self._runtime(), gate_reason=gate, lease=self.lease,
                             athletes=self.aliases)
        order = {j.id: i for i, j in enumerate(found.jobs)}
        by_id = {j.id: j for j in found.jobs}
        doc["jobs"] = [self._annotate(r, by_id[r["id"]])
                       for r in sorted(doc["jobs"], key=lambda r: order[r["id"]])]
        if athlete or node:
            doc["filtered_counts"] = console_reads.counts(self.store.engine, athlete=athlete,
                                                          athlete_ids=ids, node=node)
        _for_coach(doc)
        doc.update(page=page, pages=max(1, math.ceil(found.total / per_page)),
                   per_page=per_page, total=found.total, athletes=self._athlete_choices(links))
        return doc

    def _annotate(self, record: dict[str, Any], job: Any) -> dict[str, Any]:
        said = words.reason(record.get("reason"), record["state"])
        record["coach"] = {"reason": said.text, "retry": said.retry}
        record["athlete"] = self._athlete_name(job)
        record["file"] = PurePath(record["path"]).name
        if job.finished_at is not None:
            record["finished_at"] = job.finished_at
        if (a := record.get("analysis")) is not None:  # Uplift's processing, in words
            record["analysis_words"] = describe(a["status"], a["error"], a["fps_detected"])
            record["analysis_failed"] = a["status"] in status.NOT_ANALYSED
        return record

    def _athlete_name(self, job: Any) -> str:
        """The display name where one is linked, else the folder's name."""
        shown = getattr(self, "_shown", {})
        if job.athlete_id and job.athlete_id.lower() in shown:
            return str(shown[job.athlete_id.lower()])
        if job.athlete_id and job.athlete_id.lower() in self._names:
            return self._names[job.athlete_id.lower()]
        rel = PurePath(job.path).relative_to(job.root) if job.path.startswith(job.root) \
            else None
        if rel is not None and len(rel.parts) > 1:
            return rel.parts[0]
        return job.athlete_id or ""

    def _links(self) -> list[Link]:
        table = self.directory.links() if self.directory.available() else []
        return directory.merged(self.aliases, table)

    def _athlete_ids(self, athlete: str | None, links: list[Link]) -> list[str]:
        if not athlete:
            return []
        by_folder = {x.folder: x.athlete_id for x in links}
        uuid = self.aliases.get(athlete) or by_folder.get(directory.nfc(athlete), athlete)
        return [uuid.lower()] if len(uuid) == 36 else []

    def _athlete_choices(self, links: list[Link]) -> list[dict[str, Any]]:
        seen = set(console_reads.athlete_ids(self.store.engine))
        choices: dict[str, dict[str, Any]] = {
            x.folder: {"folder": x.folder, "athlete_id": x.athlete_id, "name": x.name}
            for x in links}
        linked = {x.athlete_id for x in links}
        for uuid in seen:
            if uuid.lower() not in linked:
                choices[uuid] = {"folder": uuid, "athlete_id": uuid, "name": None}
        return [choices[k] for k in sorted(choices)]

    # ---- the athlete directory -------------------------------------------------------------

    def athletes(self) -> dict[str, Any]:
        """`GET /api/athletes`: every link (source config|table) and the folders that wait."""
        return {"athletes": [x.public() for x in self._links()],
                "unknown_folders": unknown_folders(self.store)}

    def link(self, folder: str, athlete_id: str, name: str | None, client: str) -> Link:
        """Link a folder (Invalid says why not, in one line); its waiting files go now."""
        x = directory.link(folder, athlete_id, name)
        self._editable(x.folder)
        # In-flight jobs that keep the athlete they were reserved with are logged by the table.
        self.directory.put([x], "the console", f"{socket.gethostname()}, from {client}",
                           time.time())
        self._on_change()
        return x

    def unlink(self, folder: str) -> bool:
        folder = directory.nfc(folder.strip())
        self._editable(folder)
        if self.directory.remove(folder, time.time()) is None:
            return False
        self._on_change()
        return True

    def _editable(self, folder: str) -> None:
        if not self.directory.available():
            raise Invalid(schema.lag(self.store.engine) or "the job table has no athletes yet")
        if directory.from_config(folder, self.aliases):
            # The coach's words: the admin changes it in the file `athletes list` names.
            raise FromConfig(f"the folder '{folder}' is linked in this station's settings; "
                             f"{words.ASK} to change it")

    @staticmethod
    def _states(state: str | None) -> list[str] | None:
        if not state:
            return None
        out: list[str] = []
        for word in state.split(","):
            word = word.strip().lower()
            if word in STATE_GROUPS:
                out += [str(s) for s in STATE_GROUPS[word]]
            elif word in {s.value for s in JobState}:
                out.append(word)
        return out

    def history(self, now: float) -> dict[str, Any]:
        """The last hour, per minute: bytes per second and files finished (web/history.py)."""
        return self._history.snapshot(now)

    # ---- actions -------------------------------------------------------------------------

    def retry(self, job_id: int) -> bool:
        done = bool(self.store.retry([job_id], time.time()))
        if done:
            self._on_change()
        return done

    def retry_failed(self) -> int:
        n = len(self.store.retry(None, time.time()))
        if n:
            self._on_change()
        return n

    def pause(self) -> None:
        control.pause(self.store, time.time())
        self._on_change()

    def resume(self) -> None:
        control.resume(self.store, time.time())
        self._on_change()

    def _gate(self) -> str | None:
        """Without the daemon's own gate: the operator's pause, in `status`'s words."""
        from daemon.work.gate import Gate

        return Gate(self.store, "").check()[1]

    def paused(self) -> bool:
        return control.paused(self.store, time.time())[0]

    def health(self) -> tuple[bool, str]:
        if self._health is not None:
            return self._health()
        try:
            self.store.counts()
        except Exception as exc:  # any database fault: say so, do not crash the probe
            return False, f"the job database cannot be read: {type(exc).__name__}"
        return True, "ok"


def _for_coach(doc: dict[str, Any]) -> None:
    """The page's banners and summary in a coach's words (web/words.py): `status`'s messages
    name config files and commands, which the page never shows."""
    doc["notices"] = {name: {**n, "message": words.notice(name, str(n.get("message", "")))}
                      for name, n in doc["notices"].items()}
    doc["hold"] = words.hold(doc["hold"])
    doc["freed"] = words.freed(status.freed_words(doc.get("retention") or {}))


class _PageView:
    """The store as status.collect sees it for one page: its jobs are the page's jobs; every
    other read (counts, notices, nodes) goes to the real store."""

    def __init__(self, store: Any, jobs: list[Any]):
        self._store, self._jobs = store, jobs

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def jobs(self, states: Any = None, newest: int | None = None, **_: Any) -> list[Any]:
        wanted = None if states is None else {str(s) for s in states}
        return [j for j in self._jobs if wanted is None or j.state in wanted]
