"""What `status` shows: counts per state, what is moving, what waits and why, what failed."""

from __future__ import annotations

import itertools
import json
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TextIO

from daemon.analysis.results import describe
from daemon.analysis.schedule import STATUSES
from daemon.commands.terminal import escape_all
from daemon.config.hints import command
from daemon.jobs import directory, fleet, paths, schema
from daemon.jobs.athletes import AthleteTable, unknown_folders
from daemon.jobs.models import Job, JobState
from daemon.jobs.store import Store
from daemon.service import control
from daemon.station.space import human
from daemon.timeutil import iso_utc, local_clock

LISTED = 100  # the newest jobs of each state that `status` lists (`more` counts the rest)
SKIPPED_LISTED_FOR = 7 * 86400.0  # skipped jobs leave the default listing after a week
# The order `status --json` lists jobs in: what needs a person first, then what moves, waits,
# was set aside, and what is finished.
ORDER = (JobState.FAILED, JobState.UPLOADING, JobState.RESERVED, JobState.QUEUED,
         JobState.PENDING, JobState.SKIPPED, JobState.DONE)


def job_record(job: Job, now: float) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": job.id,
        "path": paths.readable(job.path),
        "athlete_id": job.athlete_id,
        "session_group_id": job.session_group_id,
        "state": job.state,
        "session_id": job.session_id,
        "attempts": job.attempts,
        "last_error": job.last_error,
        "size": job.size,
        "bytes_sent": job.bytes_sent,
        "node": job.node or job.owner or None,  # holder / uploader; a node-local job's node
    }
    record["analysis"] = analysis_record(job)
    if job.state == JobState.QUEUED and job.next_attempt_at > now:
        record["next_attempt_at"] = job.next_attempt_at
    if job.state == JobState.UPLOADING and job.size:
        record["percent"] = round(100.0 * job.bytes_sent / job.size, 1)
        elapsed = job.updated_at - (job.upload_started_at or job.updated_at)
        if job.bytes_sent and elapsed > 0:
            rate = job.bytes_sent / elapsed
            record["rate_bytes_per_s"] = round(rate)
            record["eta_seconds"] = round((job.size - job.bytes_sent) / rate, 1)
    return record


def analysis_record(job: Job) -> dict[str, Any] | None:
    """Uplift's processing of the job's capture: None until the upload is confirmed (and for
    uploads done before it was followed, or with following off)."""
    if job.state != JobState.DONE or job.analysis_status is None:
        return None
    checked = job.analysis_checked_at
    return {"status": job.analysis_status, "error": job.analysis_error,
            "fps_detected": job.analysis_fps,
            "checked_at": iso_utc(checked) if checked is not None else None}


def live_attention(runtime: dict[str, Any]) -> dict[str, Any]:
    """The running daemon's own conditions (from its runtime state file), which it may not
    have been able to write to the job table (disk full)."""
    pid = runtime.get("pid")
    if not isinstance(pid, int):
        return {}
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return {}  # a stale file from a daemon that died
    except PermissionError:
        pass
    return {name: {"message": message, "until": None}
            for name, message in (runtime.get("attention") or {}).items()}


def _expired(name: str, notice: dict[str, Any], now: float) -> bool:
    """An operator's pause whose end time has passed is over (other notices' `until` is only
    when the daemon looks again)."""
    return name == control.NOTICE and notice.get("until") is not None and notice["until"] <= now


def collect(store: Store, include_all: bool = False, now: float | None = None,
            runtime: dict[str, Any] | None = None,
            gate_reason: str | None = None, node: str | None = None,
            lease: float = 30.0, athletes: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The `status --json` document. By default it lists the newest LISTED jobs of each state
    (skipped ones for a week), failed first, and says in `more` how many of each state it left
    out; `include_all`: every job, in id order. `gate_reason`: why no upload may start now (an
    operator's pause, outside upload hours): every queued job waits for that. `node`: only
    that node's jobs (fleet mode); `lease`: a node silent longer is shown not alive;
    `athletes`: the config's [athletes], shown with the table's links."""
    now = now_of(store) if now is None else now
    doc = _head(store, now, runtime, gate_reason, lease, athletes)
    if include_all:
        jobs = store.jobs(node=node)
    else:
        jobs, totals = store.listing(LISTED, now - SKIPPED_LISTED_FOR, node=node)
        listed = Counter(j.state for j in jobs)
        doc["more"] = {s: n - listed[s] for s, n in totals.items() if n > listed[s]}
        jobs.sort(key=lambda j: (ORDER.index(JobState(j.state)), j.id))
    earlier, linked = store.earlier_uploads(jobs), _linked(doc)
    doc["jobs"] = [_record(j, now, doc, earlier.get(j.id), linked) for j in jobs]
    return doc


def _with_earlier(store: Store, jobs: Iterator[Job], batch: int = 500
                  ) -> Iterator[tuple[Job, tuple[int, str | None] | None]]:
    """Streamed jobs with the upload each one follows, looked up a batch at a time."""
    while chunk := list(itertools.islice(jobs, batch)):
        earlier = store.earlier_uploads(chunk)
        yield from ((j, earlier.get(j.id)) for j in chunk)


def stream(store: Store, out: TextIO, as_json: bool, now: float | None = None,
           runtime: dict[str, Any] | None = None, gate_reason: str | None = None,
           node: str | None = None, lease: float = 30.0,
           athletes: Mapping[str, str] | None = None, config: str | None = None) -> None:
    """`status --all`: every job, written as it is read (a table of any size, little
    memory); the same document or text as `collect` + `render` would give. `config`: the
    config file's path, named in the commands it suggests (hints.command)."""
    now = now_of(store) if now is None else now
    doc = _head(store, now, runtime, gate_reason, lease, athletes)
    linked = _linked(doc)
    if not as_json:
        def section(states: tuple[JobState, ...]) -> Iterator[dict[str, Any]]:
            return (escape_all(_record(j, now, doc, e, linked)) for j, e in
                    _with_earlier(store, store.each_job(states, node=node)))
        for line in _lines(escape_all(doc), section, now, config):
            out.write(line + "\n")
        return
    out.write(json.dumps(doc, indent=2)[:-2] + ',\n  "jobs": [')
    for i, (job, earlier) in enumerate(_with_earlier(store, store.each_job(node=node))):
        record = json.dumps(_record(job, now, doc, earlier, linked), indent=2)
        record = record.replace("\n", "\n    ")
        out.write(("," if i else "") + "\n    " + record)
    out.write("\n  ]\n}\n")


def now_of(store: Store) -> float:
    """A fleet's leases and due times are on the database's clock (a station whose own clock
    is off must not misjudge the others); one node's, on this machine's."""
    return store.db_now() if getattr(store, "fleet", False) else time.time()


def _head(store: Store, now: float, runtime: dict[str, Any] | None,
          gate_reason: str | None, lease: float,
          athletes: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Everything of the document but its jobs."""
    notices = {name: n for name, n in {**store.notices(), **live_attention(runtime or {})}.items()
               if not name.startswith("_") and not _expired(name, n, now)}
    nodes = store.nodes(now, lease) if getattr(store, "fleet", False) else []
    table = AthleteTable(store)
    links = directory.merged(athletes or {}, table.links() if table.available() else [])
    analysis = store.analysis.counts() if schema.has(store.engine, "0009") else \
        dict.fromkeys(STATUSES, 0)
    return {"counts": store.counts(), "analysis_counts": analysis, "notices": notices,
            "hold": gate_reason, "nodes": nodes, "athletes": [x.public() for x in links],
            "unknown_folders": unknown_folders(store), "retention": retention_record(store)}


def retention_record(store: Store) -> dict[str, Any]:
    """What [retention] freed, since its first deletion (zero and None before any)."""
    if not schema.has(store.engine, "0010"):
        return {"freed_bytes": 0, "freed_files": 0, "since": None}
    freed = store.retention.freed()
    return {**freed, "since": None if freed["since"] is None else iso_utc(freed["since"])}


def freed_words(retention: Mapping[str, Any]) -> str | None:
    """"freed 14.2 GiB: 31 files" (None before the first deletion)."""
    n = retention.get("freed_files") or 0
    if not n:
        return None
    return f"freed {human(retention['freed_bytes'])}: {n} file{'' if n == 1 else 's'}"


def _linked(doc: dict[str, Any]) -> dict[str, str]:
    """folder -> athlete UUID of the document's athletes (the config's over the table's)."""
    return {a["folder"]: a["athlete_id"] for a in doc["athletes"]}


def _record(job: Job, now: float, doc: dict[str, Any],
            earlier: tuple[int, str | None] | None = None,
            linked: Mapping[str, str] | None = None) -> dict[str, Any]:
    """One job as `status` shows it, with the words a coach reads, everywhere alike.
    `earlier`: the job (and capture) of this file's upload before it changed. A job that
    holds no reservation shows its folder's link as it stands (`linked`): its capture is
    made for that one (work/athlete.py), whatever was read when it was queued."""
    r = job_record(job, now)
    if linked is not None and r["state"] in (JobState.PENDING, JobState.QUEUED):
        r["athlete_id"] = directory.folder_link(job.rel_path, linked)
    if earlier is not None:
        r["earlier_upload"] = {"job_id": earlier[0], "session_id": earlier[1]}
    gate_reason = doc["hold"]
    if job.owner and r["state"] in (JobState.PENDING, JobState.QUEUED) and any(
            n["name"] == job.owner and not n["alive"] for n in doc["nodes"]):
        r["reason"] = fleet.waiting_reason(job.owner)  # node-local: only its node uploads it
    elif r["state"] == JobState.QUEUED and gate_reason and "next_attempt_at" not in r:
        r["reason"] = gate_reason
    elif r["state"] in (JobState.PENDING, JobState.QUEUED):
        r["reason"] = waiting_reason(r, now)
    elif r["state"] in (JobState.FAILED, JobState.SKIPPED):
        r["reason"] = r["last_error"]
    return r


def waiting_reason(job: dict[str, Any], now: float) -> str:
    if job["state"] == JobState.PENDING:
        return job["last_error"] or "settling: waiting for the file to stop changing"
    if "next_attempt_at" in job:
        return job["last_error"] or f"backing off until {local_clock(job['next_attempt_at'], now)}"
    return job["last_error"] or "waiting for a free upload slot"


def _station(node: dict[str, Any]) -> str:
    if node["alive"]:
        return "running"
    return "stopped" if node.get("stopped") else "NOT RUNNING"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


SECTIONS: tuple[tuple[str, tuple[JobState, ...]], ...] = (
    ("Failed (needs a person):", (JobState.FAILED,)),
    ("Uploading:", (JobState.RESERVED, JobState.UPLOADING)),
    ("Waiting:", (JobState.PENDING, JobState.QUEUED)),
    ("Recently uploaded:", (JobState.DONE,)),
    ("Skipped:", (JobState.SKIPPED,)),
)


def render(data: dict[str, Any], now: float | None = None, config: str | None = None) -> str:
    now = time.time() if now is None else now
    data = escape_all(data)  # names and messages reach a terminal: no control characters
    jobs = data["jobs"]

    def section(states: tuple[JobState, ...]) -> Iterator[dict[str, Any]]:
        return (j for j in jobs if j["state"] in states)
    return "\n".join(_lines(data, section, now, config))


def _lines(data: dict[str, Any], section: Callable[[tuple[JobState, ...]],
                                                    Iterator[dict[str, Any]]],
           now: float, config: str | None = None) -> Iterator[str]:
    """The text of `status`, section by section; `section(states)` gives that section's
    jobs in id order (from the document, or read from the table as they are written)."""
    counts, more = data["counts"], data.get("more", {})
    yield from (f"ATTENTION: {n['message']}" for n in data.get("notices", {}).values())
    yield "Jobs: " + ", ".join(f"{n} {state}" for state, n in counts.items())
    if (freed := freed_words(data.get("retention") or {})) is not None:
        yield (f"Retention: {freed} (uploaded originals Uplift has analysed, since "
               f"{data['retention']['since']})")
    if data.get("nodes"):
        yield "Stations: " + ", ".join(
            f"{n['name']} ({_station(n)})" for n in data["nodes"])
    shown = 0
    yield from _analysis_lines(section((JobState.DONE,)))
    for title, states in SECTIONS:
        rows = section(states)
        if states == (JobState.DONE,):  # the newest few, newest first
            rows = iter(list(rows)[-5:][::-1]) if "more" in data else rows
        first = next(rows, None)
        if first is None:
            continue
        yield from ("", title)
        ids: list[str] = []
        for j in itertools.chain([first], rows):
            shown += 1
            ids += [str(j["id"])] if len(ids) < 5 else []
            yield _line(j, now)
        if states == (JobState.FAILED,):
            yield (f"  Fix the cause, then: {command('retry ' + ' '.join(ids), config)}  "
                   f"(or: {command('retry --failed', config)})")
        left = sum(more.get(s.value, 0) for s in states)
        if left and states != (JobState.DONE,):
            yield f"  ... and {left} more ({command('status --all', config)} lists every job)"
    yield from _unknown_lines(data.get("unknown_folders") or [], now, config)
    if not shown:
        yield from ("", "No files seen yet.")


def _analysis_lines(done: Iterator[dict[str, Any]]) -> Iterator[str]:
    """Uploaded captures Uplift could not analyse: the file, the athlete, Uplift's summary."""
    rows = [j for j in done if (j.get("analysis") or {}).get("status") in NOT_ANALYSED]
    if not rows:
        return
    yield from ("", "Uploaded, but not analysed by Uplift (record again, or ask Uplift):")
    for j in rows:
        a = j["analysis"]
        yield (f"  #{j['id']} {j['path']}  (athlete {j['athlete_id'] or 'unknown'})\n"
               f"      {describe(a['status'], a['error'], a['fps_detected'])}")


NOT_ANALYSED = ("error", "gone", "unknown")


def _unknown_lines(folders: list[dict[str, Any]], now: float,
                   config: str | None = None) -> Iterator[str]:
    """Folders whose files wait for an athlete, and the command that links each."""
    if not folders:
        return
    yield from ("", "Folders waiting for an athlete:")
    for f in folders:
        yield (f"  {f['folder']}: {f['files']} file(s), waiting for "
               f"{_duration(max(0.0, now - f['oldest']))}")
    link = command("athletes add FOLDER ATHLETE_UUID [--name NAME]", config)
    yield f"  Link each to its athlete: {link} (or in the console)"


def _line(j: dict[str, Any], now: float) -> str:
    line = _line_of(j, now)
    if (e := j.get("earlier_upload")) is not None:
        line += (f"\n      changed after it was uploaded as #{e['job_id']} (session "
                 f"{e['session_id']}): this version is a new capture")
    return line


def _line_of(j: dict[str, Any], now: float) -> str:
    if j["state"] in (JobState.RESERVED, JobState.UPLOADING):
        pct = f"{j.get('percent', 0.0):5.1f}%" if j["state"] == JobState.UPLOADING \
            else "reserving"
        speed = ""
        if "rate_bytes_per_s" in j:
            speed = (f"  {j['rate_bytes_per_s'] / 1e6:.1f} MB/s, "
                     f"about {_duration(j['eta_seconds'])} left")
        return f"  #{j['id']} {pct}{speed}  {j['path']}"
    if j["state"] in (JobState.PENDING, JobState.QUEUED):
        return f"  #{j['id']} {j['path']}\n      {j.get('reason') or waiting_reason(j, now)}"
    if j["state"] == JobState.DONE:
        a = j.get("analysis") or {}
        words = describe(a.get("status"), a.get("error"), a.get("fps_detected"))
        return f"  #{j['id']} {j['path']}  (session {j['session_id']})" + \
            (f"  {words}" if words else "")
    return f"  #{j['id']} {j['path']}\n      {j['last_error']}"
