"""The daemon's two network clients, built from the config: one pooled keep-alive client for the
API, one for storage, both through the proxy and trust settings, the uploads through the one
bandwidth limiter."""

from __future__ import annotations

import httpx

from daemon.config import Config, ConfigError
from daemon.net.api import ApiClient
from daemon.net.bandwidth import Limiter, Timetable, lower
from daemon.net.transport import TrustFileError, ssl_context
from daemon.net.upload import Uploader, chunk_for_rate
from daemon.station import recording


def build(cfg: Config, token: str, limiter: Limiter,
          table: Timetable) -> tuple[ApiClient, Uploader]:
    """A ca_file that cannot be loaded is a config error."""
    timeout = httpx.Timeout(connect=cfg.api.connect_timeout, read=cfg.api.read_timeout,
                            write=cfg.api.read_timeout, pool=cfg.api.read_timeout)
    # The lowest rate of the day (or while a recording is written) sets it.
    chunk = chunk_for_rate(lower(table.min_rate, recording.cap_of(
        recording.parse_policy(cfg.upload.while_recording))))
    try:
        trust = ssl_context(cfg.api.ca_file)  # one CA store for both clients
        api = ApiClient(cfg.api.base_url, token, timeout, proxy=cfg.api.proxy,
                        total_seconds=cfg.api.read_timeout, trust=trust)
        uploader = Uploader(cfg.upload.stall_seconds, cfg.api.connect_timeout, chunk_size=chunk,
                            limiter=limiter, proxy=cfg.api.proxy, trust=trust)
    except TrustFileError as exc:
        raise ConfigError(f"{cfg.source}: [api] ca_file: {exc}") from None
    return api, uploader
