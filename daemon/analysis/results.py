"""What a look found, told where people look: the log, /metrics, a notification for a capture
that failed Uplift's checks (and for `gone` and `unknown`), batched like failed uploads."""

from __future__ import annotations

from dataclasses import dataclass

from daemon.jobs import paths


@dataclass(frozen=True)
class Result:
    """A capture's final analysis status, with what a coach needs to find it."""
    job_id: int
    path: str
    athlete_id: str | None
    session_id: str
    status: str  # completed | error | gone | unknown
    error: str | None
    fps: float | None

    @property
    def file(self) -> str:
        return paths.readable(self.path)


def describe(status: str | None, error: str | None, fps: float | None) -> str:
    """The words for a capture's analysis: "analysing…", "analysed · 240 fps", or the failure
    (Uplift's own summary, as given)."""
    if status is None:
        return ""
    if status == "processing":
        return "analysing…"
    if status == "completed":
        return f"analysed · {fps:g} fps" if fps is not None else "analysed"
    if status == "error":
        return f"failed Uplift's checks: {error}" if error else \
            "failed Uplift's checks (Uplift gave no summary)"
    if status == "gone":
        return "deleted at Uplift before it was analysed"
    return f"analysis unknown: {error}" if error else "analysis unknown"


def notice_line(r: Result) -> str:
    """One line of the notification: the file, the athlete and what happened."""
    return f"{r.file} (athlete {r.athlete_id or 'unknown'}): {describe(r.status, r.error, r.fps)}"
