"""What `status` shows: counts per state, what is moving, what waits and why, what failed."""

from __future__ import annotations

import os
import time
from typing import Any

from daemon import control
from daemon.jobs import fleet, paths
from daemon.jobs.models import Job, JobState
from daemon.jobs.store import Store
from daemon.timeutil import local_clock

RECENT_DONE = 200


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
            lease: float = 30.0) -> dict[str, Any]:
    """The `status --json` document. `gate_reason`: why no upload may start now (an
    operator's pause, outside upload hours): every queued job waits for that. `node`: only
    that node's jobs (fleet mode); `lease`: a node silent longer is shown not alive."""
    fleet_mode = getattr(store, "fleet", False)
    if now is None:  # a fleet's leases and due times are on the database's clock
        now = store.db_now() if fleet_mode else time.time()
    counts = store.counts()
    if include_all:
        jobs = store.jobs(node=node)
    else:
        jobs = store.jobs([s for s in JobState if s is not JobState.DONE], node=node)
        done = store.jobs([JobState.DONE], newest=RECENT_DONE, node=node)
        jobs = sorted(jobs + done, key=lambda j: j.id)
    notices = {name: n for name, n in {**store.notices(), **live_attention(runtime or {})}.items()
               if not name.startswith("_") and not _expired(name, n, now)}
    records = [job_record(j, now) for j in jobs]
    nodes = store.nodes(now, lease) if fleet_mode else []
    down = {n["name"] for n in nodes if not n["alive"]}
    for j, r in zip(jobs, records, strict=True):  # the words a coach reads, everywhere alike
        if j.owner in down and r["state"] in (JobState.PENDING, JobState.QUEUED):
            r["reason"] = fleet.waiting_reason(j.owner)  # node-local: only its node uploads it
        elif r["state"] == JobState.QUEUED and gate_reason and "next_attempt_at" not in r:
            r["reason"] = gate_reason
        elif r["state"] in (JobState.PENDING, JobState.QUEUED):
            r["reason"] = waiting_reason(r, now)
        elif r["state"] in (JobState.FAILED, JobState.SKIPPED):
            r["reason"] = r["last_error"]
    return {"counts": counts, "notices": notices, "hold": gate_reason, "jobs": records,
            "nodes": nodes}


def waiting_reason(job: dict[str, Any], now: float) -> str:
    if job["state"] == JobState.PENDING:
        return job["last_error"] or "settling: waiting for the file to stop changing"
    if "next_attempt_at" in job:
        return job["last_error"] or f"backing off until {local_clock(job['next_attempt_at'])}"
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


def render(data: dict[str, Any], now: float | None = None) -> str:
    now = time.time() if now is None else now
    counts = data["counts"]
    lines = [f"ATTENTION: {n['message']}" for n in data.get("notices", {}).values()]
    lines.append("Jobs: " + ", ".join(f"{n} {state}" for state, n in counts.items()))
    if data.get("nodes"):
        lines.append("Stations: " + ", ".join(
            f"{n['name']} ({_station(n)})" for n in data["nodes"]))
    jobs = data["jobs"]
    moving = [j for j in jobs if j["state"] in (JobState.RESERVED, JobState.UPLOADING)]
    waiting = [j for j in jobs if j["state"] in (JobState.PENDING, JobState.QUEUED)]
    failed = [j for j in jobs if j["state"] == JobState.FAILED]
    skipped = [j for j in jobs if j["state"] == JobState.SKIPPED]
    if moving:
        lines += ["", "Uploading:"]
        for j in moving:
            pct = f"{j.get('percent', 0.0):5.1f}%" if j["state"] == JobState.UPLOADING \
                else "reserving"
            speed = ""
            if "rate_bytes_per_s" in j:
                speed = (f"  {j['rate_bytes_per_s'] / 1e6:.1f} MB/s, "
                         f"about {_duration(j['eta_seconds'])} left")
            lines.append(f"  #{j['id']} {pct}{speed}  {j['path']}")
    if waiting:
        lines += ["", "Waiting:"]
        for j in waiting:
            lines.append(f"  #{j['id']} {j['path']}\n      "
                         f"{j.get('reason') or waiting_reason(j, now)}")
    if failed:
        lines += ["", "Failed (needs a person):"]
        for j in failed:
            lines.append(f"  #{j['id']} {j['path']}\n      {j['last_error']}")
        ids = " ".join(str(j["id"]) for j in failed[:5])
        lines.append(f"  Fix the cause, then: uplift-capture retry {ids}  "
                     f"(or: uplift-capture retry --failed)")
    done = [j for j in jobs if j["state"] == JobState.DONE][-5:]
    if done:
        lines += ["", "Recently uploaded:"]
        for j in reversed(done):
            lines.append(f"  #{j['id']} {j['path']}  (session {j['session_id']})")
    if skipped:
        lines += ["", "Skipped:"]
        for j in skipped:
            lines.append(f"  #{j['id']} {j['path']}\n      {j['last_error']}")
    if not jobs:
        lines += ["", "No files seen yet."]
    return "\n".join(lines)
