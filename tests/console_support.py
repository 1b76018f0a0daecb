"""Helpers for the console tests: a real SQLite Store with jobs put into each state through the
Store's own transitions, and a console served in-process on a free loopback port."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import insert
from support import ATHLETE

from daemon.jobs.models import Job, JobState
from daemon.jobs.store import Ready, Store
from daemon.web import Metrics, StoreBackend, WebServer, start_console

ROOT = "/captures"
# Debian's Chromium, as every browser test (and docs/screenshot.py) launches it.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
ALIASES = {"jane": ATHLETE}
SECRET = "upload-policy-SECRET-signature-0123"  # must never reach a page, JSON or metrics


def console_answers(url: str) -> bool:
    """A daemon's console at `url` answers (its health, good or bad)."""
    try:
        return httpx.get(url + "/healthz", timeout=2).status_code in (200, 503)
    except httpx.HTTPError:
        return False


def ready(athlete_id: str = ATHLETE, name: str = "clip.mov") -> Ready:
    return Ready(size=5_000_000, mtime_ns=1, athlete_id=athlete_id,
                 session_group_id=str(uuid.uuid4()), file_name=name,
                 capture_time="2026-01-01T10:00:00Z", camera_configuration="{}",
                 movement_attributes="{}")


def add_job(store: Store, state: str, name: str, folder: str = "jane",
            reason: str = "the API refused this capture (422)", size: int = 5_000_000,
            sent: int = 2_000_000, now: float | None = None) -> int:
    """A job driven to `state` with the Store's transitions (one job queued at a time)."""
    now = time.time() if now is None else now
    seen = store.observe(f"{ROOT}/{folder}/{name}", ROOT, size, int(now * 1e9), now)
    job_id = seen.job_id
    if state == JobState.PENDING:
        return job_id
    r = ready(ALIASES.get(folder, ATHLETE), name)
    assert store.mark_ready(job_id, Ready(**{**r.__dict__, "size": size,
                                              "mtime_ns": int(now * 1e9)}), now)
    if state == JobState.QUEUED:
        return job_id
    if state == JobState.FAILED:  # e.g. the API refused the capture: retry re-queues it
        store.fail(job_id, [JobState.QUEUED], now, reason)
        return job_id
    claimed = store.claim(now + 1)
    assert claimed is not None and claimed.id == job_id, "another job was due first"
    session = f"sess-{job_id}"
    store.record_reservation(claimed.claim, session, r.session_group_id,
                             f"https://storage.example/up?sig={SECRET}", now + 1800, now)
    store.start_upload(claimed.claim, now - 20)
    store.progress(claimed.claim, sent, now)
    if state == JobState.UPLOADING:
        return job_id
    store.finish(claimed.claim, '"etag"', now)
    return job_id


def bulk_jobs(store: Store, n: int, state: str = "failed", folder: str = "bulk") -> None:
    """`n` rows at once (10k jobs in well under a second), for paging."""
    now = time.time()
    rows = [dict(path=f"{ROOT}/{folder}/take-{i:05d}.mov", root=ROOT, size=1000 + i,
                 mtime_ns=i, state=state, attempts=1, refusals=0, next_attempt_at=0.0,
                 bytes_sent=0, created_at=now, updated_at=now, force=False,
                 last_error="the API refused this capture (422)", finished_at=now)
            for i in range(n)]
    columns = Job.__table__.columns
    for i, row in enumerate(rows):  # the fleet identity, on schemas that have it
        if "watch" in columns:
            row["watch"] = ROOT
        if "rel_path" in columns:
            row["rel_path"] = f"{folder}/take-{i:05d}.mov"
    with store.engine.begin() as conn:
        conn.execute(insert(Job), rows)


@contextmanager
def console(tmp: Path, password_file: Path | None = None, listen: str = "127.0.0.1:0",
            **options: Any) -> Iterator[tuple[WebServer, Store, StoreBackend]]:
    """`options`: start_console's own (sessions=, throttle=)."""
    store = Store.open(f"sqlite:///{tmp / 'jobs.db'}")
    backend = StoreBackend(store, ALIASES)
    metrics = Metrics(counts=store.counts, paused=backend.paused)
    server = start_console(listen, password_file, backend, metrics, **options)
    assert server is not None
    server.metrics = metrics  # type: ignore[attr-defined]  # for the tests' own checks
    try:
        yield server, store, backend
    finally:
        server.stop(5)
        store.close()


def csrf_token(client: httpx.Client) -> str:
    page = client.get("/")
    assert page.status_code == 200, page.text
    found = re.search(r'<meta name="csrf-token" content="([^"]+)"', page.text)
    assert found, "no CSRF token in the page"
    return found.group(1)


def dump(doc: Any) -> str:
    return json.dumps(doc, sort_keys=True)
