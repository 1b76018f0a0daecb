"""One parser per section of the config file, each reading its TOML table into settings and
refusing, with the file and key named, what an admin must fix. `parse` puts them together."""

from __future__ import annotations

import ipaddress
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from daemon.config.read import (
    ConfigError,
    Table,
    check_base_url,
    database_url,
    duration,
    existing_file,
    hhmm,
    hours_text,
    is_loopback,
    parse_uuid,
    proxy_url,
    resolve_path,
    type_word,
)
from daemon.config.settings import (
    AFTER_UPLOAD,
    NODE_NAME_MAX,
    ORIENTATIONS,
    AnalysisSettings,
    ApiSettings,
    CaptureSettings,
    Config,
    NodeSettings,
    NotifySettings,
    RetentionSettings,
    SandboxSettings,
    StationSettings,
    UploadSettings,
    WatchingSettings,
    WatchRoot,
    WebSettings,
)
from daemon.station import fsprobe


def parse(data: Mapping[str, Any], source: Path) -> Config:
    top = Table(data, "", source)
    api_s = api(top.table("api"), source)
    db_url = database(top.table("database"), source)
    up_t = top.table("upload")
    upload_s = upload(up_t, source)
    watching_s = watching(top.table("watching"))
    cap_t = top.table("capture")
    capture = _capture(cap_t, CaptureSettings())
    cap_t.finish()
    watches_s = watches(top.get("watch", list, []), capture, upload_s,
                        up_t.where("archive_dir"), source)
    athletes_s = athletes(top.table("athletes"))
    sandbox_s = sandbox(top.table("sandbox"), source, db_url)
    web_s = web(top.table("web"), source)
    notify_s = notify(top.table("notify"))
    node_s = node(top.table("node"))
    level = logging(top.table("logging"))
    station_s = station(top.table("station"))
    analysis_s = analysis(top.table("analysis"))
    retention_s = retention(top.table("retention"), analysis_s)
    top.finish()
    return Config(source, api_s, db_url, upload_s, capture, watches_s, athletes_s,
                  sandbox_s, watching_s, level, web_s, notify_s, node_s, station_s, analysis_s,
                  retention_s)


def api(api_t: Table, source: Path) -> ApiSettings:
    token_file = api_t.get("token_file", str)
    api = ApiSettings(
        base_url=check_base_url(api_t.get("base_url", str, ApiSettings.base_url),
                                api_t.where("base_url")),
        token_file=resolve_path(token_file, source) if token_file else None,
        connect_timeout=api_t.number("connect_timeout", ApiSettings.connect_timeout, 0.1),
        read_timeout=api_t.number("read_timeout", ApiSettings.read_timeout, 0.1),
        proxy=proxy_url(api_t),
        ca_file=existing_file(api_t, "ca_file", source),
    )
    api_t.finish()
    return api


def database(db_t: Table, source: Path) -> str:
    db_url = database_url(
        db_t.get("url", str, "sqlite:////var/lib/uplift-capture/jobs.db"), source)
    db_t.finish()
    return db_url


def upload(up_t: Table, source: Path) -> UploadSettings:
    d = UploadSettings()
    archive_dir = up_t.get("archive_dir", str)
    upload = UploadSettings(
        concurrency=up_t.number("concurrency", d.concurrency, 1, integer=True),
        settle_seconds=up_t.number("settle_seconds", d.settle_seconds, 0.1),
        stall_seconds=up_t.number("stall_seconds", d.stall_seconds, 1.0),
        reserve_margin_seconds=up_t.number("reserve_margin_seconds", d.reserve_margin_seconds, 0),
        poll_seconds=up_t.number("poll_seconds", d.poll_seconds, 0.5),
        shutdown_timeout=up_t.number("shutdown_timeout", d.shutdown_timeout, 0),
        after_upload=up_t.get("after_upload", str, d.after_upload),
        archive_dir=resolve_path(archive_dir, source) if archive_dir else None,
        allow_duplicates=up_t.get("allow_duplicates", bool, d.allow_duplicates),
        bandwidth_limit=_rate(up_t, "bandwidth_limit"),
        hours=hours_text(up_t, "hours"),
        while_recording=_while_recording(up_t, "while_recording"),
    )
    if upload.after_upload not in AFTER_UPLOAD:
        raise ConfigError(f"{up_t.where('after_upload')}: must be one of "
                          f"{', '.join(AFTER_UPLOAD)}, got {upload.after_upload!r}")
    if upload.after_upload == "move" and upload.archive_dir is None:
        raise ConfigError(f"{up_t.where('archive_dir')}: required when after_upload = \"move\"")
    up_t.finish()
    return upload


def watching(wt: Table) -> WatchingSettings:
    watching = WatchingSettings(
        rescan_seconds=wt.number("rescan_seconds", WatchingSettings.rescan_seconds, 1.0),
        poll_interval=wt.number("poll_interval", WatchingSettings.poll_interval, 0.1),
    )
    wt.finish()
    return watching


def watches(raw_watches: list[Any], capture: CaptureSettings, upload: UploadSettings,
            archive_where: str, source: Path) -> tuple[WatchRoot, ...]:
    if not raw_watches:
        raise ConfigError(f"{source}: [[watch]]: at least one watch folder is required")
    watches: list[WatchRoot] = []
    for i, raw in enumerate(raw_watches):
        w = Table(raw, f"watch #{i + 1}", source)
        path = resolve_path(w.get("path", str, required=True), source)
        if fsprobe.kind(str(path)) is fsprobe.Kind.OTHER:
            raise ConfigError(f"{w.where('path')}: {str(path)!r} is not a folder")
        problem = watch_overlap(path, [o.path for o in watches])
        if problem:
            raise ConfigError(f"{w.where('path')}: {problem}")
        # A folder that does not exist (yet: an unmounted share) is not a config error: the
        # daemon shows it as ATTENTION and watches it as soon as it is there; `check` fails.
        # Nor is one that does not answer (a hung share): reading the config must not hang.
        shared = w.get("shared", bool, False)
        name = w.get("name", str)
        if shared and not (name and name.strip()):
            raise ConfigError(f"{w.where('name')}: required with shared = true (the same name "
                              f"on every node that sees this folder)")
        if shared and any(o.shared and o.name == name for o in watches):
            raise ConfigError(f"{w.where('name')}: {name!r} names another shared folder "
                              f"already; each shared folder needs its own name")
        watches.append(WatchRoot(path, _capture(w, capture), w.get("poll", bool, False),
                                 shared, name))
        w.finish()
        if upload.archive_dir is not None and upload.archive_dir.is_relative_to(path):
            raise ConfigError(f"{archive_where}: must be outside the watch folder "
                              f"{str(path)!r}, or moved files would be found again")
    return tuple(watches)


def athletes(ath_t: Table) -> dict[str, str]:
    athletes = {}
    for alias in list(ath_t.data):
        value = ath_t.get(alias, str)
        athletes[alias] = parse_uuid(value, ath_t.where(f'"{alias}"'))
    ath_t.finish()
    return athletes


def sandbox(sb_t: Table, source: Path, db_url: str) -> SandboxSettings:
    # By default beside the SQLite job table, in the state folder the service can write (the
    # config's folder, e.g. /etc/uplift-capture, it cannot); a server database: the config's.
    db = db_url.removeprefix("sqlite:///") if db_url.startswith("sqlite:////") else None
    default = str(Path(db).parent / "sandbox-data") if db else "sandbox-data"
    sandbox = SandboxSettings(
        data_dir=resolve_path(sb_t.get("data_dir", str, default), source),
        upload_window=sb_t.number("upload_window", 1800.0, 1.0),
    )
    sb_t.finish()
    return sandbox


def web(web_t: Table, source: Path) -> WebSettings:
    proxies = web_t.get("trusted_proxies", list, [])
    networks = []
    for i, proxy in enumerate(proxies):
        try:
            if not isinstance(proxy, str):
                raise ValueError
            # Kept in canonical form ("10.0.0.5/24" as 10.0.0.0/24): uvicorn takes a network
            # with host bits set for a host name, and would trust no one.
            networks.append(str(ipaddress.ip_network(proxy.strip(), strict=False)))
        except ValueError:
            raise ConfigError(f"{web_t.where('trusted_proxies')}: entry {i + 1} ({proxy!r}) "
                              f"is not an IP address or network such as \"10.0.0.5\" or "
                              f"\"10.0.0.0/24\"") from None
    web = WebSettings(listen=web_t.get("listen", str, WebSettings.listen).strip(),
                      password_file=existing_file(web_t, "password_file", source),
                      trusted_proxies=tuple(networks))
    reason = _web_listen_problem(web)
    if reason:
        raise ConfigError(f"{web_t.where('listen')}: {reason}")
    web_t.finish()
    return web


def notify(n_t: Table) -> NotifySettings:
    urls = n_t.get("urls", list, [])
    for i, url in enumerate(urls):
        if not isinstance(url, str) or "://" not in url:
            raise ConfigError(f"{n_t.where('urls')}: entry {i + 1} is not a URL such as "
                              f"\"mailtos://user:pass@host?to=a@b\" or \"json://host/path\"")
    summary = n_t.get("daily_summary", str, "").strip()
    if summary:
        hhmm(summary, n_t.where("daily_summary"))
    notify_s = NotifySettings(
        urls=tuple(urls),
        batch_seconds=n_t.number("batch_seconds", NotifySettings.batch_seconds, 0.0),
        stuck_minutes=n_t.number("stuck_minutes", NotifySettings.stuck_minutes, 0.0),
        daily_summary=summary)
    n_t.finish()
    return notify_s


def node(node_t: Table) -> NodeSettings:
    node = NodeSettings(name=node_t.get("name", str, "").strip() or _hostname(),
                        lease_seconds=node_t.number("lease_seconds", 30.0, 3.0))
    if len(node.name) > NODE_NAME_MAX:
        raise ConfigError(f"{node_t.where('name')}: {node.name[:20]!r}... is "
                          f"{len(node.name)} characters; at most {NODE_NAME_MAX}")
    node_t.finish()
    return node


def station(st_t: Table) -> StationSettings:
    from daemon.station import priority, space

    d = StationSettings()
    settings = StationSettings(priority=st_t.get("priority", str, d.priority),
                               low_disk=st_t.get("low_disk", str, d.low_disk).strip())
    if settings.priority not in priority.PRIORITIES:
        raise ConfigError(f"{st_t.where('priority')}: must be one of "
                          f"{', '.join(priority.PRIORITIES)}, got {settings.priority!r}")
    try:
        space.parse_threshold(settings.low_disk)
    except ValueError as exc:
        raise ConfigError(f"{st_t.where('low_disk')}: {exc}") from None
    st_t.finish()
    return settings


def analysis(an_t: Table) -> AnalysisSettings:
    d = AnalysisSettings()
    settings = AnalysisSettings(
        follow=an_t.get("follow", bool, d.follow),
        follow_for=duration(an_t.get("follow_for", str, "24h"), an_t.where("follow_for")),
        max_rate=an_t.number("max_rate", d.max_rate, 0.01))
    an_t.finish()
    return settings


def retention(re_t: Table, analysis_s: AnalysisSettings) -> RetentionSettings:
    """Off unless min_free or keep_days is set; only with following on, since only a capture
    Uplift reports `completed` may lose its original."""
    from daemon.station import space

    min_free = re_t.get("min_free", str, "").strip()
    if min_free:
        try:
            floor = space.parse_threshold(min_free)
        except ValueError as exc:
            raise ConfigError(f"{re_t.where('min_free')}: {exc}") from None
        if floor.size is None and floor.share is None:
            raise ConfigError(f"{re_t.where('min_free')}: \"off\" is not a floor; leave "
                              f"min_free out to free space only by keep_days")
    keep_days = re_t.get("keep_days", (int, float))
    if keep_days is not None and (not math.isfinite(keep_days) or keep_days < 0):
        raise ConfigError(f"{re_t.where('keep_days')}: must be a number of days, at least 0, "
                          f"got {keep_days!r}")
    settings = RetentionSettings(min_free, None if keep_days is None else float(keep_days))
    re_t.finish()
    if settings.on and not analysis_s.follow:
        key = "min_free" if min_free else "keep_days"
        raise ConfigError(f"{re_t.where(key)}: needs [analysis] follow = true (it is false): "
                          f"retention deletes only originals Uplift reports analysed, and "
                          f"only following finds that out")
    return settings


def logging(log_t: Table) -> str:
    level: str = log_t.get("level", str, "info").lower()
    if level not in ("debug", "info", "warning", "error"):
        raise ConfigError(f"{log_t.where('level')}: must be debug, info, warning or error")
    log_t.finish()
    return level


def _capture(t: Table, base: CaptureSettings) -> CaptureSettings:
    selection = t.get("camera_setup_selection", str, base.camera_setup_selection)
    if not selection.strip():
        raise ConfigError(f"{t.where('camera_setup_selection')}: must not be blank")
    orientation = t.get("camera_orientation", str, base.camera_orientation)
    if orientation not in ORIENTATIONS:
        raise ConfigError(
            f"{t.where('camera_orientation')}: must be one of {', '.join(ORIENTATIONS)}, "
            f"got {orientation!r}")
    movement = {**base.movement, **_plain_values(t, "movement")}
    camera = {**base.camera, **_plain_values(t, "camera")}
    return CaptureSettings(selection, orientation, movement, camera)


def _plain_values(t: Table, key: str) -> dict[str, Any]:
    """Keys passed through to the API as JSON: strings, numbers and booleans only (a TOML date
    or table cannot be sent, and would otherwise only fail at upload time)."""
    values = t.get(key, dict, {})
    for name, value in values.items():
        if not isinstance(value, str | int | float | bool):
            kind = "a date or time" if hasattr(value, "isoformat") else type_word(type(value))
            raise ConfigError(f"{t.where(f'{key}.{name}')}: must be a string, number or "
                              f"true/false (it is sent to the API as JSON), got {kind}")
        if isinstance(value, float) and not math.isfinite(value):  # JSON has no nan or inf
            raise ConfigError(f"{t.where(f'{key}.{name}')}: must be a finite number (it is sent "
                              f"to the API as JSON), got {value}")
    return dict(values)


def _rate(t: Table, key: str) -> str:
    """A plain rate, or rclone's timetable ("08:00,512KiB/s 18:00,off"), validated here and
    applied live by the service."""
    from daemon.net import bandwidth

    value = str(t.get(key, (str, int), 0)).strip() or "0"
    try:
        bandwidth.parse_limit(value)
    except ValueError as exc:
        raise ConfigError(f"{t.where(key)}: {exc}") from None
    return value


def _while_recording(t: Table, key: str) -> str:
    """"continue", "pause" or a rate (station/recording.py), validated here."""
    from daemon.station import recording

    value = str(t.get(key, (str, int), recording.CONTINUE)).strip() or recording.CONTINUE
    try:
        recording.parse_policy(value)
    except ValueError as exc:
        raise ConfigError(f"{t.where(key)}: {exc}") from None
    return value


def capture_overrides(data: Mapping[str, Any], base: CaptureSettings,
                      source: Path) -> CaptureSettings:
    """A capture.toml sidecar: the keys of [capture], applied over `base`."""
    t = Table(data, "", source)
    settings = _capture(t, base)
    t.finish()
    return settings


def _hostname() -> str:
    import socket

    return (socket.gethostname() or "node")[:NODE_NAME_MAX]


def watch_overlap(path: Path, others: list[Path]) -> str | None:
    """Why `path` cannot be watched beside `others`: the root folder (every file on the
    machine), or a folder inside another watch folder or holding one (its files would be
    found twice, as two jobs with two athletes)."""
    here = Path(os.path.normpath(path))
    if here.parent == here:
        return (f"{str(path)!r} is the whole file system; watch the folder the cameras write "
                f"to")
    for other in others:
        there = Path(os.path.normpath(other))
        if here.is_relative_to(there) or there.is_relative_to(here):
            return (f"{str(path)!r} overlaps the watch folder {str(other)!r} (one is inside "
                    f"the other, so their files would be found twice); watch only one of them")
    return None


def _web_listen_problem(web: WebSettings) -> str | None:
    if not web.listen:
        return None
    host, sep, port = web.listen.rpartition(":")
    if not sep or not port.isdigit() or not host:
        return f"must be HOST:PORT such as \"127.0.0.1:8780\" (or \"\" for off), got " \
               f"{web.listen!r}"
    host = host.strip("[]")
    if not is_loopback(host) and web.password_file is None:
        return (f"{web.listen!r} is reachable from other machines; set [web] password_file "
                f"to expose the console (it can retry and pause uploads), or listen on "
                f"127.0.0.1")
    return None
