"""Through a real forward proxy (Debian's tinyproxy, with Basic auth) to the sandbox served over
TLS with a private CA made for the test: the API client and the uploader tunnel through it (its log
shows the CONNECTs) and succeed with `ca_file`; without it, a certificate error that names the
certificate's subject and issuer. `check`'s network walk tells the same story."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import httpx
import pytest
from support import ATHLETE, TOKEN, Sandbox, free_port, make_movie, wait_for
from tls_proxy import PROXY_PASSWORD, PrivateCA, Tinyproxy

from daemon.errors import Kind, TransferError, Where
from daemon.net import diagnose
from daemon.net.api import ApiClient
from daemon.net.upload import Uploader

pytestmark = pytest.mark.skipif(shutil.which("tinyproxy") is None,
                                reason="tinyproxy is not installed (apt-get install tinyproxy)")


def body(name: str) -> dict[str, object]:
    return {"athlete_id": ATHLETE, "session_group_id": ATHLETE, "file_name": name,
            "camera_configuration": {"camera_setup_selection": "single.front_on"},
            "movement_attributes": {"activity": "golf", "movement": "full_swing"}}


def sandbox_port(box: Sandbox) -> int:
    return httpx.URL(box.base_url).port or 443


def test_reserve_and_upload_through_the_proxy_with_ca_file(
        tmp_path: Path, tls_box: Sandbox, proxy: Tinyproxy, pki: PrivateCA) -> None:
    movie = make_movie(tmp_path / "swing.mov", frames=20)
    api = ApiClient(tls_box.base_url, TOKEN, httpx.Timeout(10.0), proxy=proxy.url,
                    ca_file=pki.ca_pem)
    up = Uploader(stall_seconds=10, proxy=proxy.url, ca_file=pki.ca_pem)
    try:
        res = api.create_capture(body("swing.mov"))
        assert res.upload_url.startswith("https://")
        sent = up.upload(str(movie), movie.stat().st_size, res.upload_url, res.upload_fields,
                         "swing.mov", lambda n: None, threading.Event())
    finally:
        api.close()
        up.close()
    assert sent.size == movie.stat().st_size
    assert [u["size"] for u in tls_box.uploads_for("swing.mov")] == [sent.size]
    # Both the API request and the upload went through the proxy's tunnel.
    assert wait_for(lambda: proxy.connects(sandbox_port(tls_box)) >= 2, 5,
                    what="two CONNECTs in tinyproxy's log")


def test_without_ca_file_the_certificate_is_named(
        tls_box: Sandbox, proxy: Tinyproxy) -> None:
    api = ApiClient(tls_box.base_url, TOKEN, httpx.Timeout(10.0), proxy=proxy.url)
    try:
        with pytest.raises(TransferError) as err:
            api.create_capture(body("a.mov"))
    finally:
        api.close()
    e = err.value
    assert e.kind is Kind.CERTIFICATE and e.where is Where.API
    assert "O=Lab Sandbox" in e.message and "O=Lab Inspection CA" in e.message, e.message
    assert "[api] ca_file" in e.message and PROXY_PASSWORD not in e.message
    assert tls_box.state()["reservations"] == []
    assert proxy.connects(sandbox_port(tls_box)) >= 1  # the failure was seen through the tunnel


def test_a_wrong_proxy_password_is_not_echoed(tls_box: Sandbox, proxy: Tinyproxy,
                                              pki: PrivateCA) -> None:
    wrong = proxy.url.replace(PROXY_PASSWORD, "wrong-pass-77")
    api = ApiClient(tls_box.base_url, TOKEN, httpx.Timeout(10.0), proxy=wrong,
                    ca_file=pki.ca_pem)
    try:
        with pytest.raises(TransferError) as err:
            api.create_capture(body("a.mov"))
    finally:
        api.close()
    assert "wrong-pass-77" not in err.value.message and err.value.kind is not Kind.CERTIFICATE
    assert tls_box.state()["reservations"] == []


def test_check_walks_the_path(tls_box: Sandbox, proxy: Tinyproxy, pki: PrivateCA) -> None:
    storage = tls_box.root + "/s3/uplift-sandbox"
    good = diagnose.walk(tls_box.base_url, TOKEN, proxy.url, pki.ca_pem, storage)
    assert all(ok for ok, _ in good), good
    texts = " | ".join(t for _, t in good)
    assert "proxy" in texts and "accepts the token" in texts and "storage" in texts
    assert PROXY_PASSWORD not in texts

    untrusted = diagnose.walk(tls_box.base_url, TOKEN, proxy.url, None, storage)
    failed = [t for ok, t in untrusted if not ok]
    assert failed and "O=Lab Inspection CA" in failed[0] and "ca_file" in failed[0], untrusted

    rejected = diagnose.walk(tls_box.base_url, "not-the-token", proxy.url, pki.ca_pem, None)
    assert rejected[-1] == (False, "the API rejected the token (HTTP 401)"), rejected

    dead = diagnose.walk(tls_box.base_url, TOKEN, f"http://127.0.0.1:{free_port()}",
                         pki.ca_pem, None)
    assert not dead[-1][0] and "cannot be reached" in dead[-1][1], dead
