"""The sandbox's reads of captures, as uplift-api/captures.md documents them: GET
/v1/captures/{id} (one capture; 404 with Uplift's body when it does not exist or was deleted)
and GET /v1/captures (a page: source, status, athlete_id, limit 1-500, offset).

A capture reads `awaiting_upload` until its upload is stored, then `processing` for a few
seconds (faults.analysis_seconds, default ANALYSIS_SECONDS), then, by a rule a newcomer can
use on purpose:

- `error`, with the summary QA_SUMMARY, when the file name sent contains "qa-fail" (any case):
  name a movie `swing-qa-fail.mov` to see a capture fail Uplift's checks;
- `error`, "The video could not be read", when the stored file is not a movie we can read;
- else `completed`, with `fps_detected` the movie's frame rate (its video track's samples over
  its duration).
"""

from __future__ import annotations

import json
import time
from http import HTTPStatus
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from daemon.sandbox.state import SandboxState

ANALYSIS_SECONDS = 3.0
QA_FAIL = "qa-fail"
QA_SUMMARY = "Quality check failed: the athlete is not fully visible in the frame"
UNREADABLE = "The video could not be read"
STATUSES = ("awaiting_upload", "processing", "completed", "error")


class Answering(Protocol):
    path: str
    headers: Any

    @property
    def state(self) -> SandboxState: ...

    def _json(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None: ...


def frame_rate(path: Path) -> float | None:
    """The movie's video frame rate from its sample tables, or None if we cannot read it."""
    import struct

    from daemon.watch import movie

    try:
        with open(path, "rb") as f:
            size = f.seek(0, 2)
            start, end = movie._top_level(f, size)[b"moov"]
            f.seek(start)
            moov = f.read(end - start)
    except (OSError, movie.NotAMovie):
        return None
    for kind, s, e in movie._atoms(moov):
        mdia = movie._child(moov, (s, e), b"mdia") if kind == b"trak" else None
        hdlr = movie._child(moov, mdia, b"hdlr") if mdia else None
        if mdia is None or hdlr is None or moov[hdlr[0] + 8:hdlr[0] + 12] != b"vide":
            continue
        mdhd, stts = movie._child(moov, mdia, b"mdhd"), movie._child(
            moov, mdia, b"minf", b"stbl", b"stts")
        if mdhd is None or stts is None:
            return None
        at = mdhd[0] + (20 if moov[mdhd[0]] == 1 else 12)
        timescale = struct.unpack_from(">I", moov, at)[0]
        count = struct.unpack_from(">I", moov, stts[0] + 4)[0]
        pairs = [struct.unpack_from(">II", moov, stts[0] + 8 + 8 * i)
                 for i in range(min(count, (stts[1] - stts[0] - 8) // 8))]
        frames, ticks = sum(n for n, _ in pairs), sum(n * d for n, d in pairs)
        return round(frames * timescale / ticks, 2) if ticks and timescale else None
    return None


def analysis(st: SandboxState, session: dict[str, Any], now: float
             ) -> tuple[str, str | None, float | None]:
    """A capture's status, error and fps_detected at `now` (the rule in this module's doc)."""
    stored_at = session.get("stored_at")
    if not session.get("stored"):
        return "awaiting_upload", None, None
    wait = st.faults.analysis_seconds
    if stored_at is None or now - stored_at < (ANALYSIS_SECONDS if wait is None else wait):
        return "processing", None, None
    rec = session.get("record") or {}
    if QA_FAIL in str(rec.get("file_name", "")).lower():
        return "error", QA_SUMMARY, None
    if "fps" not in session:
        received = session.get("received")
        session["fps"] = frame_rate(Path(received)) if received else None
    if session["fps"] is None:
        return "error", UNREADABLE, None
    return "completed", None, session["fps"]


def capture(st: SandboxState, session_id: str, session: dict[str, Any], now: float,
            status: str | None = None) -> dict[str, Any]:
    rec = session.get("record") or {}
    request = rec.get("request") or {}
    movement = request.get("movement_attributes") or {}
    found, error, fps = analysis(st, session, now)
    return {"session_id": session_id, "athlete_id": rec.get("athlete_id"),
            "activity": movement.get("activity"), "movement": movement.get("movement"),
            "status": status or found, "error": None if status else error,
            "capture_time": request.get("capture_time"),
            "fps_detected": None if status else fps}


def _refused(h: Answering, fault: dict[str, Any]) -> int:
    status = int(fault["status"])
    headers = {"Retry-After": str(fault["retry_after"])} if "retry_after" in fault else {}
    h._json(status, {"error": HTTPStatus(status).phrase.replace(" ", ""),
                     "message": f"injected failure {status}"}, headers)
    return status


def _authorized(h: Answering, read: dict[str, Any]) -> bool:
    """The key is the one accepted; a refused read is logged too (`read` names it), so a
    test can count a client's reads with a refused key."""
    if h.headers.get("Authorization") == f"Bearer {h.state.token}":
        return True
    h._json(401, {"error": "Unauthorized", "message": "Invalid or missing API key"})
    h.state.append(h.state._log_reads, {**read, "answer": 401, "at": time.time()})
    return False


def get_one(h: Answering, session_id: str) -> None:
    st = h.state
    if not _authorized(h, {"session_id": session_id}):
        return
    fault = st.take_fault("capture_read") or {}
    with st.lock:
        session = st.sessions.get(session_id)
        if "status" in fault:
            answered: Any = _refused(h, fault)
        elif session is None or session.get("deleted"):
            h._json(404, {"error": "NotFound", "message": "Capture not found."})
            answered = 404
        else:
            body = capture(st, session_id, session, time.time(), fault.get("capture"))
            answered = body["status"]
            h._json(200, body)
    st.append(st._log_reads, {"session_id": session_id, "answer": answered, "at": time.time()})


def get_list(h: Answering) -> None:
    st = h.state
    query = {k: v[-1] for k, v in parse_qs(urlsplit(h.path).query).items()}
    if not _authorized(h, {"list": query}):
        return
    fault = st.take_fault("capture_list") or {}
    try:
        limit, offset = int(query.get("limit", 100)), int(query.get("offset", 0))
    except ValueError:
        limit = offset = -1
    status = query.get("status")
    if not 1 <= limit <= 500 or offset < 0 or (status is not None and status not in STATUSES) \
            or query.get("source", "api") != "api":
        h._json(400, {"error": "BadRequest", "message": "Invalid query parameters."})
        return
    if "status" in fault:
        answered: Any = _refused(h, fault)
    elif "body" in fault:  # a 200 whose body is this, as given (a list we cannot read)
        h._json(200, fault["body"])
        answered = "body"
    else:
        now = time.time()
        with st.lock:
            rows = [capture(st, sid, s, now) for sid, s in st.sessions.items()
                    if s.get("record") and not s.get("deleted")]
        rows = [r for r in rows if (status is None or r["status"] == status) and
                query.get("athlete_id") in (None, r["athlete_id"])]
        h._json(200, {"captures": rows[offset:offset + limit], "total_count": len(rows),
                       "offset": offset, "limit": limit})
        answered = len(rows[offset:offset + limit])
    st.append(st._log_reads, {"list": query, "answer": answered, "at": time.time()})


def delete(st: SandboxState, body: bytes) -> bool:
    """POST /_sandbox/delete {"session_id": ...}: the capture is deleted at Uplift (404)."""
    session_id = json.loads(body or b"{}").get("session_id")
    with st.lock:
        session = st.sessions.get(session_id) if isinstance(session_id, str) else None
        if session is None:
            return False
        session["deleted"] = True
    return True
