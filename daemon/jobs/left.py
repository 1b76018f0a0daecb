"""Which ended jobs the watcher is done with at their path.

A job skipped because its file left its path (moved, vanished, removed) dealt with nothing
there: if that version is seen at that path again (renamed back, its folder back) it is work,
never a known version. A job skipped for its content (a duplicate, not a regular file) or
failed stays known: the same bytes there again get the same answer. Only the reasons tell these
skips apart (older versions wrote the same words), so they are all written and read here.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, func, not_, or_

from daemon.jobs.models import Job, JobState

# The file was not at its path when the worker came for it / while it settled. Both wordings
# are in tables written by older versions.
VANISHED = ("the file was moved or deleted before it was uploaded; if it moved within the "
            "watch folder it is uploaded from its new place")
REMOVED = "the file was removed or moved away before it was uploaded"
VANISHED_REASONS = (VANISHED, REMOVED)
MOVED_PREFIX = "the file was moved to "  # the job at a moved file's old path


def moved_reason(new_path: str) -> str:
    return f"{MOVED_PREFIX}{new_path}; it is uploaded from there"


def left_its_path(state: str, reason: str | None) -> bool:
    """Skipped because its file was not at its path: nothing was decided about its content."""
    return state == JobState.SKIPPED and reason is not None and (
        reason in VANISHED_REASONS or reason.startswith(MOVED_PREFIX))


def known(state: str, reason: str | None) -> bool:
    """The watcher needs do nothing more for this version at this path."""
    return state != JobState.PENDING and not left_its_path(state, reason)


def known_clause() -> ColumnElement[bool]:
    """`known` as a query's condition (a rescan's known versions, read without a row each)."""
    reason = func.coalesce(Job.last_error, "")  # NULL must not make the whole test NULL
    left = and_(Job.state == JobState.SKIPPED,
                or_(reason.in_(VANISHED_REASONS), reason.startswith(MOVED_PREFIX,
                                                                     autoescape=True)))
    return and_(Job.state != JobState.PENDING, not_(left))
