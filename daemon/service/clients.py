"""The service's credentials and network clients: the API token (re-read when a person replaces
it), the API and storage clients (replaced on a reload that changes proxy or trust), and the
one bandwidth limiter for the life of the process with its timetable."""

from __future__ import annotations

from datetime import datetime

from daemon import config as config_mod
from daemon import logs
from daemon.config import Config, ConfigError
from daemon.net import clients
from daemon.net.api import ApiClient
from daemon.net.bandwidth import Limiter, Timetable, apply_timetable, parse_limit
from daemon.net.upload import Uploader
from daemon.service.parts import Ctx

log = logs.get("service")


class Connections:
    def __init__(self, use_sandbox: bool):
        self.use_sandbox = use_sandbox
        self.token = ""
        self.limiter: Limiter | None = None
        self.table: Timetable | None = None
        self.cap = 0.0  # while a recording is written (station/recording.py); 0: none

    def read_token(self, cfg: Config) -> None:
        self.token = config_mod.read_token(cfg)
        logs.add_secret(self.token)

    def build(self, cfg: Config) -> tuple[ApiClient, Uploader]:
        self.table = parse_limit(cfg.upload.bandwidth_limit)
        if self.limiter is None:  # one limiter for the life of the process: changed live
            self.limiter = Limiter(self.table.rate_at(datetime.now()))
        return clients.build(cfg, self.token, self.limiter, self.table)

    def toggle_limit(self) -> None:
        """SIGUSR2: the bandwidth limit off, or on again, as rclone does."""
        if self.limiter is None:
            return
        off = self.limiter.toggle()
        log.info("bandwidth.toggled", limit="off" if off else "on", rate=self.limiter.rate)

    def timetable(self, ctx: Ctx) -> None:
        """The bandwidth slot in force now, and a timer for the next slot."""
        if self.limiter is None or self.table is None:
            return
        nxt = apply_timetable(self.limiter, self.table, datetime.now(), self.cap)
        if nxt is not None:
            ctx.scheduler.add_job(self.timetable, "date", run_date=nxt.astimezone(),
                                  args=[ctx], id="timetable", replace_existing=True)
            log.info("bandwidth.slot", rate=self.limiter.rate, until=nxt.isoformat())

    def recording_cap(self, rate: float) -> None:
        """A recording began (`rate`: while_recording's) or ended (0): the lower of it and
        the timetable's slot, in force now."""
        self.cap = rate
        if self.limiter is not None and self.table is not None:
            apply_timetable(self.limiter, self.table, datetime.now(), rate)
            log.info("bandwidth.recording", rate=self.limiter.rate)

    def retable(self, cfg: Config, ctx: Ctx) -> None:
        """After a reload: the new timetable, in force now."""
        self.table = parse_limit(cfg.upload.bandwidth_limit)
        self.timetable(ctx)

    def token_check(self, cfg: Config, ctx: Ctx) -> None:
        """While credentials are rejected, pick up a replaced token file at once."""
        if ctx.worker.reservations.paused_for() <= 0 or self.use_sandbox:
            return
        if "credentials" not in ctx.store.notices():
            return
        self.reread_token(cfg, ctx)

    def reread_token(self, cfg: Config, ctx: Ctx) -> None:
        try:
            token = config_mod.read_token(cfg)
        except ConfigError as exc:
            log.error("config.token_unreadable", reason=str(exc))
            return
        if token != self.token:
            self.token = token
            logs.add_secret(token)
            ctx.api.set_token(token)
            notice = ctx.worker.reservations.lift()
            if notice == "credentials" or "credentials" in ctx.store.notices():
                ctx.store.clear_notice("credentials")  # the next reservation tells anew
            log.info("api.token_replaced")
            ctx.worker.wake()

    def swap(self, cfg: Config, ctx: Ctx) -> None:
        """New proxy or trust settings (or a certificate problem someone may have fixed):
        fresh clients for new requests. The one uploader takes the new storage client, so
        uploads in flight finish on the old one yet a shutdown or `pause --now` still aborts
        them; the old client is closed when they end."""
        try:
            api, uploader = self.build(cfg)
        except ConfigError as exc:
            log.error("config.reload_failed", reason=str(exc))
            return
        ctx.api.adopt(api)  # the one API client and uploader of the process take them
        ctx.worker.pipeline.uploader.adopt(uploader)
        if ctx.worker.reservations.lift() or "certificate" in ctx.store.notices():
            ctx.store.clear_notice("certificate")  # the next reservation tells anew
        log.info("net.clients_replaced", proxy=bool(cfg.api.proxy), ca_file=str(cfg.api.ca_file))
        ctx.worker.wake()
