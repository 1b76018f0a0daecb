"""SQLAlchemy models of the job table. Times are float epoch seconds (dialect-neutral)."""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class JobState(StrEnum):
    """The public vocabulary of `status --json`; DESIGN.md fixes these words."""

    PENDING = "pending"  # seen; waiting to stop changing, or held with a reason (last_error)
    QUEUED = "queued"  # ready; waits for a worker and for next_attempt_at
    RESERVED = "reserved"  # a worker holds it; session_id set once the API answered
    UPLOADING = "uploading"  # bytes are moving to the storage endpoint
    DONE = "done"  # the storage endpoint accepted the file and the file did not change
    FAILED = "failed"  # needs a person; the reason is in last_error
    SKIPPED = "skipped"  # deliberately not uploaded; the reason is in last_error


TERMINAL = (JobState.DONE, JobState.FAILED, JobState.SKIPPED)
ACTIVE = (JobState.PENDING, JobState.QUEUED, JobState.RESERVED, JobState.UPLOADING)
IN_FLIGHT = (JobState.RESERVED, JobState.UPLOADING)  # a worker holds it


class Base(DeclarativeBase):
    pass


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        # One file version is one job: a rescan finds the row, not a twin; three nodes seeing a
        # shared file through three mount paths find the one row (watch = the share's name).
        UniqueConstraint("owner", "watch", "rel_path", "size", "mtime_ns",
                         name="uq_jobs_file_identity"),
        # Claiming scans only queued rows by due time, however many done rows pile up.
        Index("ix_jobs_state_due", "state", "next_attempt_at"),
        Index("ix_jobs_path", "path"),
        Index("ix_jobs_athlete_fingerprint", "athlete_id", "fingerprint"),
        # The newest jobs of a state without sorting the table (status, the console's pages);
        # uploads finished since a time (the console's chart, /metrics).
        Index("ix_jobs_state_id", "state", "id"),
        Index("ix_jobs_state_finished", "state", "finished_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    path: Mapped[str] = mapped_column(Text, nullable=False)
    root: Mapped[str] = mapped_column(Text, nullable=False)
    # Fleet identity: the watch folder (a shared root's name, else the root's absolute path)
    # and the path below it (paths.to_db). `owner`: the node of a node-local job in fleet mode,
    # "" for shared jobs and for everything on SQLite (one node).
    watch: Mapped[str] = mapped_column(Text, nullable=False)
    rel_path: Mapped[str] = mapped_column(Text, nullable=False)
    owner: Mapped[str] = mapped_column(String(64), nullable=False, default="",
                                       server_default="")
    # The holder while in flight (then the node that uploaded it), and the number of the
    # current claim: every write of an in-flight job is guarded by (id, node, claim_no).
    node: Mapped[str | None] = mapped_column(String(64))
    claim_no: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")
    size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    mtime_ns: Mapped[int] = mapped_column(BigInteger, nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False)
    athlete_id: Mapped[str | None] = mapped_column(String(36))
    session_group_id: Mapped[str | None] = mapped_column(String(36))
    file_name: Mapped[str | None] = mapped_column(Text)  # the name sent to the API
    capture_time: Mapped[str | None] = mapped_column(String(40))  # ISO 8601 UTC, as sent
    # The reservation's metadata, fixed when the job is queued (JSON objects as sent).
    camera_configuration: Mapped[str | None] = mapped_column(Text)
    movement_attributes: Mapped[str | None] = mapped_column(Text)
    force: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)  # retry --force
    session_id: Mapped[str | None] = mapped_column(String(64))  # current reservation
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # Captures the endpoint refused in a row (non-expiry storage 403, unusable reservations):
    # bounded, so one file never creates captures without end; an operator's retry resets it.
    refusals: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")
    # Upload windows that ran out in a row: bounded like refusals (errors.after_lapse).
    lapses: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    bytes_sent: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    upload_started_at: Mapped[float | None] = mapped_column(Float)  # for rate and ETA
    etag: Mapped[str | None] = mapped_column(String(80))
    # size + sha256 of the first and last MiB: finds a re-copied video without a full read
    fingerprint: Mapped[str | None] = mapped_column(String(64))
    archived_path: Mapped[str | None] = mapped_column(Text)  # where after_upload=move put it
    created_at: Mapped[float] = mapped_column(Float, nullable=False)
    updated_at: Mapped[float] = mapped_column(Float, nullable=False)
    finished_at: Mapped[float | None] = mapped_column(Float)


class Reservation(Base):
    """Every reservation a job held, kept for audit. upload_fields are never stored: they
    carry the signed policy, which is a secret."""

    __tablename__ = "reservations"
    __table_args__ = (Index("ix_reservations_job", "job_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False)
    session_id: Mapped[str] = mapped_column(String(64), nullable=False)
    session_group_id: Mapped[str] = mapped_column(String(36), nullable=False)
    upload_url: Mapped[str] = mapped_column(Text, nullable=False)
    expires_at: Mapped[float] = mapped_column(Float, nullable=False)
    created_at: Mapped[float] = mapped_column(Float, nullable=False)
    # active | used (upload accepted) | lapsed (window ran out) | abandoned (not used)
    outcome: Mapped[str] = mapped_column(String(16), nullable=False, default="active")


class Node(Base):
    """A daemon of the fleet and its heartbeat (epoch seconds, database time on PostgreSQL)."""

    __tablename__ = "nodes"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    heartbeat_at: Mapped[float] = mapped_column(Float, nullable=False)
    started_at: Mapped[float] = mapped_column(Float, nullable=False)
    host: Mapped[str | None] = mapped_column(Text)


class Notice(Base):
    """Service-wide conditions `status` must show, e.g. credentials rejected (uploads paused)."""

    __tablename__ = "notices"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    message: Mapped[str] = mapped_column(Text, nullable=False)
    until: Mapped[float | None] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float, nullable=False)


class RootIdentity(Base):
    """A watch root's identity (device, inode) as this node saw it when files were first seen
    under it: a root that is missing, or another folder (an unmounted share's bare mount
    point) while jobs under it wait, is "not there", and its files are not taken for gone.
    Keyed by (node, watch): each node has its own mount of a shared watch."""

    __tablename__ = "watch_roots"

    node: Mapped[str] = mapped_column(String(64), primary_key=True)  # "" on SQLite (one node)
    watch: Mapped[str] = mapped_column(Text, primary_key=True)  # as Job.watch
    path: Mapped[str] = mapped_column(Text, nullable=False)  # this node's root path, for people
    dev: Mapped[int] = mapped_column(BigInteger, nullable=False)
    ino: Mapped[int] = mapped_column(BigInteger, nullable=False)
    recorded_at: Mapped[float] = mapped_column(Float, nullable=False)


class AthleteLink(Base):
    """The athlete directory: a folder name (NFC) linked to an athlete at a station, by the
    `athletes` command or the console. The config's [athletes] wins over it."""

    __tablename__ = "athletes"

    folder: Mapped[str] = mapped_column(Text, primary_key=True)
    athlete_id: Mapped[str] = mapped_column(String(36), nullable=False)
    name: Mapped[str | None] = mapped_column(Text)
    set_by: Mapped[str] = mapped_column(Text, nullable=False)  # who (a user, "console")
    set_where: Mapped[str] = mapped_column(Text, nullable=False)  # which station / client
    set_at: Mapped[float] = mapped_column(Float, nullable=False)
