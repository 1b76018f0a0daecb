"""The typed, frozen settings the config file becomes (parse.py reads it into these)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_CONFIG_PATH = Path("/etc/uplift-capture/config.toml")
TOKEN_CREDENTIAL = "uplift-api-token"
ORIENTATIONS = ("auto", "portrait", "landscape")
AFTER_UPLOAD = ("keep", "move", "delete")


@dataclass(frozen=True)
class CaptureSettings:
    camera_setup_selection: str = "single.front_on"
    camera_orientation: str = "auto"
    movement: Mapping[str, Any] = field(default_factory=dict)
    camera: Mapping[str, Any] = field(default_factory=dict)  # extra camera_configuration keys


@dataclass(frozen=True)
class WatchRoot:
    path: Path
    capture: CaptureSettings
    poll: bool = False  # polling observer, for SMB/NFS shares that give no inotify events
    shared: bool = False  # fleet mode: other nodes watch this folder too
    name: str | None = None  # fleet mode: the folder's name, the same on every node


@dataclass(frozen=True)
class ApiSettings:
    base_url: str = "https://api.uplift.ai/v1"
    token_file: Path | None = None
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    proxy: str | None = None  # else HTTPS_PROXY / HTTP_PROXY / ALL_PROXY / NO_PROXY
    ca_file: Path | None = None  # added to the OS trust store


@dataclass(frozen=True)
class UploadSettings:
    concurrency: int = 2
    settle_seconds: float = 2.0
    stall_seconds: float = 120.0  # no bytes accepted for this long -> abort and retry
    reserve_margin_seconds: float = 120.0  # re-reserve a cached window shorter than this
    poll_seconds: float = 30.0  # safety-net wake-up of the worker
    shutdown_timeout: float = 20.0  # in-flight uploads get this long on SIGTERM
    after_upload: str = "keep"  # keep | move | delete, only ever for done jobs
    archive_dir: Path | None = None  # where "move" puts files (athlete/session kept)
    allow_duplicates: bool = False  # upload the same video again for the same athlete
    # a rate for all uploads together ("20MB/s"; "0" = unlimited), or rclone's timetable
    bandwidth_limit: str = "0"
    hours: str = ""  # upload only inside these hours ("" = any time)
    # while a file under a watch folder is written: "continue" | "pause" | a rate (the lower
    # of it and bandwidth_limit wins); station/recording.py
    while_recording: str = "continue"


@dataclass(frozen=True)
class WatchingSettings:
    rescan_seconds: float = 300.0  # full rescan catches what events missed
    poll_interval: float = 5.0  # seconds between polls for [[watch]] poll = true


@dataclass(frozen=True)
class WebSettings:
    listen: str = "127.0.0.1:8780"  # "" = off
    password_file: Path | None = None  # required when listen is not loopback
    # Reverse proxies whose X-Forwarded-For is believed (IPs or CIDRs); none by default
    trusted_proxies: tuple[str, ...] = ()


@dataclass(frozen=True)
class NotifySettings:
    urls: tuple[str, ...] = ()  # apprise URLs (secret: they may carry passwords)
    batch_seconds: float = 60.0
    stuck_minutes: float = 30.0
    daily_summary: str = ""  # "HH:MM" or ""


NODE_NAME_MAX = 64  # the job table's node columns (jobs.node, jobs.owner, nodes.name)


@dataclass(frozen=True)
class NodeSettings:
    name: str = ""  # default: the host name
    lease_seconds: float = 30.0


@dataclass(frozen=True)
class StationSettings:
    priority: str = "background"  # background (nice 10, IO best-effort 7) | normal
    low_disk: str = ""  # "24MiB", "2GiB", "10%", "off"; "" = the larger of 5 % and 2 GiB


@dataclass(frozen=True)
class AnalysisSettings:
    follow: bool = True  # follow each uploaded capture until Uplift has analysed it
    follow_for: float = 86400.0  # seconds ("24h" in the file); then `unknown`
    max_rate: float = 2.0  # GET /captures requests per second, for the whole station


@dataclass(frozen=True)
class RetentionSettings:
    """Off unless configured: delete uploaded originals Uplift has analysed (station/retention)."""
    min_free: str = ""  # "24MiB", "2GiB", "10%": free below this on a watch folder's disk
    keep_days: float | None = None  # or done more than this many days ago

    @property
    def on(self) -> bool:
        return bool(self.min_free) or self.keep_days is not None


@dataclass(frozen=True)
class SandboxSettings:
    data_dir: Path
    upload_window: float = 1800.0


@dataclass(frozen=True)
class Config:
    source: Path
    api: ApiSettings
    database_url: str
    upload: UploadSettings
    capture: CaptureSettings
    watches: tuple[WatchRoot, ...]
    athletes: Mapping[str, str]  # folder alias -> athlete UUID (lower case)
    sandbox: SandboxSettings
    watching: WatchingSettings = WatchingSettings()
    log_level: str = "info"
    web: WebSettings = WebSettings()
    notify: NotifySettings = NotifySettings()
    node: NodeSettings = NodeSettings()
    station: StationSettings = StationSettings()
    analysis: AnalysisSettings = AnalysisSettings()
    retention: RetentionSettings = RetentionSettings()
