"""The daemon itself behind a forward proxy (tinyproxy) to the sandbox over TLS with a private
CA: `[api] proxy` and `[api] ca_file` carry reservations and uploads through the proxy; without
the CA, uploads pause service-wide with the certificate's names and resume after the fix and a
reload. Skipped until the config has the keys."""

from __future__ import annotations

import shutil
import signal
from pathlib import Path

import httpx
import pytest
from support import (
    Sandbox,
    job_state,
    make_movie,
    start_daemon,
    status,
    wait_for,
    write_config,
)
from tls_proxy import PROXY_PASSWORD, PrivateCA, Tinyproxy

pytestmark = pytest.mark.skipif(shutil.which("tinyproxy") is None,
                                reason="tinyproxy is not installed")


def config(tmp_path: Path, box: Sandbox, proxy: Tinyproxy, ca: Path | None) -> Path:
    watch = tmp_path / "watch"
    (watch / "jane").mkdir(parents=True, exist_ok=True)
    path = write_config(tmp_path / "config.toml", watch=watch, db=tmp_path / "jobs.db",
                        base_url=box.base_url)
    keys = f'proxy = "{proxy.url}"\n' + (f'ca_file = "{ca}"\n' if ca else "")
    path.write_text(path.read_text().replace("[api]\n", "[api]\n" + keys, 1))
    return path


def test_the_daemon_uploads_through_the_proxy(tmp_path: Path, tls_box: Sandbox,
                                              proxy: Tinyproxy, pki: PrivateCA) -> None:
    cfg = config(tmp_path, tls_box, proxy, pki.ca_pem)
    daemon = start_daemon(tmp_path, cfg)
    try:
        make_movie(tmp_path / "watch" / "jane" / "swing.mov")
        wait_for(lambda: job_state(cfg, "swing.mov") == "done", 60, what="swing.mov done")
    finally:
        assert daemon.stop() == 0
    port = httpx.URL(tls_box.base_url).port or 443
    assert proxy.connects(port) >= 2  # the reservation and the upload were tunnelled
    assert len(tls_box.uploads_for("swing.mov")) == 1
    assert PROXY_PASSWORD not in daemon.log_path.read_text()


def test_an_untrusted_certificate_pauses_then_resumes_after_reload(
        tmp_path: Path, tls_box: Sandbox, proxy: Tinyproxy, pki: PrivateCA) -> None:
    cfg = config(tmp_path, tls_box, proxy, None)
    daemon = start_daemon(tmp_path, cfg)
    try:
        make_movie(tmp_path / "watch" / "jane" / "swing.mov")

        def certificate_notice() -> str:
            notices = status(cfg).get("notices", {})
            return " ".join(str(n.get("message", "")) for n in notices.values()
                            if "certificate" in str(n.get("message", "")))

        notice = wait_for(certificate_notice, 60, what="the certificate notice")
        assert "O=Lab Inspection CA" in notice and "ca_file" in notice, notice
        assert job_state(cfg, "swing.mov") in ("queued", "pending")  # paused, not failed
        cfg.write_text(cfg.read_text().replace(
            f'proxy = "{proxy.url}"\n', f'proxy = "{proxy.url}"\nca_file = "{pki.ca_pem}"\n'))
        daemon.signal(signal.SIGHUP)
        wait_for(lambda: job_state(cfg, "swing.mov") == "done", 120, what="done after reload")
    finally:
        assert daemon.stop() == 0
    assert len(tls_box.uploads_for("swing.mov")) == 1
    assert PROXY_PASSWORD not in daemon.log_path.read_text()
