"""What the sandbox remembers: the faults still to inject, the athletes of known session groups,
and the reservation and upload logs (JSON lines under the data folder) that tests read back.

One lock guards it all, since every connection is answered in its own thread.
"""

from __future__ import annotations

import json
import secrets
import threading
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any


@dataclass
class Faults:
    """Failures to inject, each used up as it fires. Set through POST /_sandbox/faults."""

    reserve: list[dict[str, Any]] = field(default_factory=list)  # {"status", "retry_after", "html"}
    # Same, or {"cut": true, "after": bytes, "hold": seconds}: read that much of the body
    # (all of it if "after" is larger), wait, drop the connection; nothing stored. Or
    # {"stored_then_drop": true}: the object is stored, then the connection dropped unanswered.
    upload: list[dict[str, Any]] = field(default_factory=list)
    # GET /v1/captures/{id}: {"status": 503, "retry_after": 2} an error answer instead, or
    # {"capture": "awaiting_upload"} a 200 saying that status whatever was stored.
    capture_read: list[dict[str, Any]] = field(default_factory=list)
    # GET /v1/captures (the list): {"status": 429, "retry_after": 2} an error answer instead.
    capture_list: list[dict[str, Any]] = field(default_factory=list)
    # Seconds a stored capture reads `processing` before its analysis ends (captures.py);
    # None: captures.ANALYSIS_SECONDS.
    analysis_seconds: float | None = None
    # New reservations' upload fields ask S3 to answer a stored upload with a 303 to this URL.
    success_action_redirect: str | None = None
    upload_delay: list[float] = field(default_factory=list)  # seconds before reading a body
    # Seconds between storing an upload and answering it (the client's wait after its body).
    answer_delay: list[float] = field(default_factory=list)
    upload_rate: float | None = None  # bytes per second for every upload
    upload_window: float | None = None  # overrides the window of new reservations
    expiry_at_end: bool = False  # check the policy's expiry again once the body is in
    upload_url: str | None = None  # send uploads to another receiver (benchmarks)
    # A stored upload's Location carries its key's raw UTF-8 bytes (S3 percent-encodes them),
    # as a proxy or portal on the way may send it.
    raw_location: bool = False
    clock_offset: float = 0.0  # the API's clock runs this many seconds from ours
    latency: float | None = None  # seconds every API request waits before its answer

    @classmethod
    def names(cls) -> set[str]:
        return {f.name for f in fields(cls)}


class SandboxState:
    def __init__(self, data_dir: Path, token: str, upload_window: float):
        self.data = data_dir
        self.token = token
        self.window = upload_window
        self.secret = secrets.token_bytes(32)
        self.faults = Faults()
        self.lock = threading.Lock()
        self.groups: dict[str, str] = {}  # session_group_id -> athlete_id
        self.sessions: dict[str, dict[str, Any]] = {}
        (data_dir / "received").mkdir(parents=True, exist_ok=True)
        self._log_reservations = data_dir / "reservations.jsonl"
        self._log_uploads = data_dir / "uploads.jsonl"
        self._log_reads = data_dir / "reads.jsonl"  # every GET /v1/captures(/{id}) answered
        for rec in self.records(self._log_reservations):
            self.groups[rec["session_group_id"]] = rec["athlete_id"]
            self.sessions[rec["session_id"]] = {"record": rec}
        for rec in self.records(self._log_uploads):
            self.sessions.setdefault(rec["session_id"], {}).update(
                stored=True, stored_at=rec.get("at"), received=rec.get("path"))

    def take_fault(self, name: str) -> Any:
        with self.lock:
            queue = getattr(self.faults, name)
            return queue.pop(0) if queue else None

    def append(self, path: Path, record: dict[str, Any]) -> None:
        with self.lock, path.open("a") as f:
            f.write(json.dumps(record) + "\n")

    def records(self, path: Path) -> list[dict[str, Any]]:
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line]
