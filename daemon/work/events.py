"""What the work parts tell the rest of the service, and the one thing they ask it. The service
passes one `Events` in at construction (Worker, Pipeline) instead of assigning callbacks later;
this base tells nobody and is what unit tests and tools get."""

from __future__ import annotations

from daemon.jobs.models import Job


class Events:
    def failed(self, path: str, reason: str) -> None:
        """A file failed for good, for a reason a coach can read."""

    def notice(self, name: str, message: str | None) -> None:
        """A service-wide notice (credentials, certificate) began, or ended (None)."""

    def capture_read(self, job_id: int, since: float | None) -> None:
        """A lost answer's capture read failed (`since`: when the job's question began), or
        was answered (None): for the ATTENTION when reads keep failing (work/unanswered.py)."""

    def resettle(self, path: str) -> None:
        """A file changed under its job, or left its path: look at the path afresh."""

    def reserved(self) -> None:
        """A capture was reserved (the console's metrics)."""

    def upload_finished(self, outcome: str, size: int, seconds: float, wall: float) -> None:
        """An upload attempt ended: done, retry, failed... (the console's metrics)."""

    def uploaded(self) -> None:
        """An upload was confirmed (`done`): its capture's following has begun."""

    def folder_there(self, job: Job) -> bool:
        """Is the job's watch folder there (an unmounted share is not)? Asked only when its
        file is missing, to tell 'gone' from 'not mounted'."""
        return True
