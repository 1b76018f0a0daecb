"""The job table's schema, in SQLAlchemy Core (the ORM is not imported: it would cost the
daemon about 5.6 MiB and 50 ms of start-up for nothing it uses). Each class below is a table:
on the class, `Job.state` is its Column for queries; an instance (`Job(**row._mapping)`) is a
plain record of one row. Times are float epoch seconds (dialect-neutral)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, ClassVar, Generic, NamedTuple, TypeVar, overload

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

T = TypeVar("T")


class Col(Generic[T]):
    """A column of a table class: the Column on the class, the row's value on an instance
    (a non-data descriptor: the instance's own attribute wins)."""

    def __init__(self, *args: Any, **kw: Any):
        self.column: Column[Any] = Column(*args, **kw)
        self.says_nullable = "nullable" in kw

    def __set_name__(self, owner: type, name: str) -> None:
        self.column.name = self.column.key = name

    @overload
    def __get__(self, obj: None, owner: type) -> Column[T]: ...

    @overload
    def __get__(self, obj: object, owner: type) -> T: ...

    def __get__(self, obj: object | None, owner: type) -> Any:
        if obj is None:
            return self.column
        raise AttributeError(self.column.name)  # not reached: __init__ sets every column


class Base:
    """A table class: `__tablename__` and `__table_args__` as in SQLAlchemy's declarative
    classes, and the same nullability: a column whose annotation does not admit None is
    NOT NULL unless it says otherwise."""

    metadata: ClassVar[MetaData] = MetaData()
    __table__: ClassVar[Table]
    __tablename__: ClassVar[str]
    __table_args__: ClassVar[tuple[Any, ...]] = ()
    _names: ClassVar[tuple[str, ...]]

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        fields = {name: v for name, v in vars(cls).items() if isinstance(v, Col)}
        for name, field in fields.items():
            if not field.column.primary_key and not field.says_nullable:
                field.column.nullable = "None" in str(cls.__annotations__.get(name, ""))
        cols = {name: field.column for name, field in fields.items()}
        cls._names = tuple(cols)
        cls.__table__ = Table(cls.__tablename__, cls.metadata, *cols.values(),
                              *cls.__table_args__)

    @classmethod
    def __clause_element__(cls) -> Table:
        """`insert(Job)`, `update(Job)`: the table."""
        return cls.__table__

    def __init__(self, **values: Any):
        unknown = set(values) - set(self._names)
        if unknown:
            raise TypeError(f"{type(self).__name__} has no column {sorted(unknown)[0]!r}")
        for name in self._names:  # columns a row lacks (an older table) read as None
            setattr(self, name, values.get(name))


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


MAX_ID = 2**63 - 1  # the job table's ids are 64-bit: a larger one names no job


def parse_job_id(text: str) -> int | None:
    """A job id a person or a URL gave: ASCII digits naming a possible row (1 .. 2**63-1),
    else None (the database would raise on a larger one)."""
    if not (text.isascii() and text.isdigit()) or len(text) > 19:
        return None
    n = int(text)
    return n if 0 < n <= MAX_ID else None


class Claim(NamedTuple):
    """One claim of a job, as its claim gave it: every write of the upload begun under it
    carries it, so a stale upload's write can never pass as a newer claim of the same job
    (this node may have claimed the job again after a takeover)."""

    job_id: int
    node: str | None  # None, as the claim number: a row an older version left in flight
    no: int | None


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
        # The follower's next due capture, without a scan (analysis/follower.py).
        Index("ix_jobs_analysis_due", "analysis_status", "analysis_next_at"),
    )

    id: Col[int] = Col(Integer, primary_key=True, autoincrement=True)
    path: Col[str] = Col(Text, nullable=False)
    root: Col[str] = Col(Text, nullable=False)
    # Fleet identity: the watch folder (a shared root's name, else the root's absolute path)
    # and the path below it (paths.to_db). `owner`: the node of a node-local job in fleet mode,
    # "" for shared jobs and for everything on SQLite (one node).
    watch: Col[str] = Col(Text, nullable=False)
    rel_path: Col[str] = Col(Text, nullable=False)
    owner: Col[str] = Col(String(64), nullable=False, default="",
                                       server_default="")
    # The holder while in flight (then the node that uploaded it), and the number of the
    # current claim: every write of an in-flight job is guarded by (id, node, claim_no).
    node: Col[str | None] = Col(String(64))
    claim_no: Col[int] = Col(Integer, nullable=False, default=0, server_default="0")
    size: Col[int] = Col(BigInteger, nullable=False)
    mtime_ns: Col[int] = Col(BigInteger, nullable=False)
    state: Col[str] = Col(String(16), nullable=False)
    athlete_id: Col[str | None] = Col(String(36))
    session_group_id: Col[str | None] = Col(String(36))
    file_name: Col[str | None] = Col(Text)  # the name sent to the API
    capture_time: Col[str | None] = Col(String(40))  # ISO 8601 UTC, as sent
    # The reservation's metadata, fixed when the job is queued (JSON objects as sent).
    camera_configuration: Col[str | None] = Col(Text)
    movement_attributes: Col[str | None] = Col(Text)
    force: Col[bool] = Col(Boolean, nullable=False, default=False)  # retry --force
    session_id: Col[str | None] = Col(String(64))  # current reservation
    attempts: Col[int] = Col(Integer, nullable=False, default=0)
    # Captures the endpoint refused in a row (non-expiry storage 403, unusable reservations):
    # bounded, so one file never creates captures without end; an operator's retry resets it.
    refusals: Col[int] = Col(Integer, nullable=False, default=0, server_default="0")
    # Upload windows that ran out in a row: bounded like refusals (errors.after_lapse).
    lapses: Col[int] = Col(Integer, nullable=False, default=0, server_default="0")
    last_error: Col[str | None] = Col(Text)
    next_attempt_at: Col[float] = Col(Float, nullable=False, default=0.0)
    bytes_sent: Col[int] = Col(BigInteger, nullable=False, default=0)
    upload_started_at: Col[float | None] = Col(Float)  # for rate and ETA
    # When the current upload's closing boundary went out (written durably just before it):
    # from then on the endpoint may have stored the file whether or not we hear its answer.
    boundary_sent_at: Col[float | None] = Col(Float)
    # The capture whose upload's answer was lost: Uplift is asked about it (work/landed.py)
    # before anything of this job is sent again.
    check_session_id: Col[str | None] = Col(String(64))
    etag: Col[str | None] = Col(String(80))
    # Following the capture through Uplift's processing (daemon/analysis/): NULL until the
    # upload is confirmed (and for jobs done before 0009), then processing | completed | error |
    # gone | unknown. The follower's claim: node + lease (epoch seconds it holds until).
    analysis_status: Col[str | None] = Col(String(16))
    analysis_error: Col[str | None] = Col(Text)  # Uplift's summary, as given; or our reason
    analysis_fps: Col[float | None] = Col(Float)
    analysis_checked_at: Col[float | None] = Col(Float)
    analysis_next_at: Col[float | None] = Col(Float)
    analysis_deadline: Col[float | None] = Col(Float)
    analysis_looks: Col[int | None] = Col(Integer)
    analysis_node: Col[str | None] = Col(String(64))
    analysis_lease: Col[float | None] = Col(Float)
    # What [retention] did with the done job's file (station/retention.py): deleted (freeing
    # `size` bytes at retained_at), or found it changed | missing; NULL: not touched (0010).
    retention: Col[str | None] = Col(String(16))
    retained_at: Col[float | None] = Col(Float)
    # size + sha256 of the first and last MiB: finds a re-copied video without a full read
    fingerprint: Col[str | None] = Col(String(64))
    archived_path: Col[str | None] = Col(Text)  # where after_upload=move put it
    created_at: Col[float] = Col(Float, nullable=False)
    updated_at: Col[float] = Col(Float, nullable=False)
    finished_at: Col[float | None] = Col(Float)

    @property
    def claim(self) -> Claim:
        """The claim this row was read under (the one a claim returned, for its upload)."""
        return Claim(self.id, self.node or "", self.claim_no)


class Reservation(Base):
    """Every reservation a job held, kept for audit. upload_fields are never stored: they
    carry the signed policy, which is a secret."""

    __tablename__ = "reservations"
    __table_args__ = (Index("ix_reservations_job", "job_id"),)

    id: Col[int] = Col(Integer, primary_key=True, autoincrement=True)
    job_id: Col[int] = Col(
        Integer, ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False)
    session_id: Col[str] = Col(String(64), nullable=False)
    session_group_id: Col[str] = Col(String(36), nullable=False)
    upload_url: Col[str] = Col(Text, nullable=False)
    expires_at: Col[float] = Col(Float, nullable=False)
    created_at: Col[float] = Col(Float, nullable=False)
    # active | used (upload accepted) | lapsed (window ran out) | abandoned (not used)
    outcome: Col[str] = Col(String(16), nullable=False, default="active")


class Node(Base):
    """A daemon of the fleet and its heartbeat (epoch seconds, database time on PostgreSQL)."""

    __tablename__ = "nodes"

    name: Col[str] = Col(String(64), primary_key=True)
    heartbeat_at: Col[float] = Col(Float, nullable=False)
    started_at: Col[float] = Col(Float, nullable=False)
    host: Col[str | None] = Col(Text)


class Notice(Base):
    """Service-wide conditions `status` must show, e.g. credentials rejected (uploads paused)."""

    __tablename__ = "notices"

    name: Col[str] = Col(String(32), primary_key=True)
    message: Col[str] = Col(Text, nullable=False)
    until: Col[float | None] = Col(Float)
    updated_at: Col[float] = Col(Float, nullable=False)


class RootIdentity(Base):
    """A watch root's identity (device, inode) as this node saw it when files were first seen
    under it: a root that is missing, or another folder (an unmounted share's bare mount
    point) while jobs under it wait, is "not there", and its files are not taken for gone.
    Keyed by (node, watch): each node has its own mount of a shared watch."""

    __tablename__ = "watch_roots"

    node: Col[str] = Col(String(64), primary_key=True)  # "" on SQLite (one node)
    watch: Col[str] = Col(Text, primary_key=True)  # as Job.watch
    path: Col[str] = Col(Text, nullable=False)  # this node's root path, for people
    dev: Col[int] = Col(BigInteger, nullable=False)
    ino: Col[int] = Col(BigInteger, nullable=False)
    recorded_at: Col[float] = Col(Float, nullable=False)


class AthleteLink(Base):
    """The athlete directory: a folder name (NFC) linked to an athlete at a station, by the
    `athletes` command or the console. The config's [athletes] wins over it."""

    __tablename__ = "athletes"

    folder: Col[str] = Col(Text, primary_key=True)
    athlete_id: Col[str] = Col(String(36), nullable=False)
    name: Col[str | None] = Col(Text)
    set_by: Col[str] = Col(Text, nullable=False)  # who (a user, "console")
    set_where: Col[str] = Col(Text, nullable=False)  # which station / client
    set_at: Col[float] = Col(Float, nullable=False)
