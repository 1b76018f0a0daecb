"""Fixtures of the end-to-end tier: the sandbox over TLS with a private CA, and a forward proxy
(tinyproxy) in front of it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support import Sandbox
from tls_proxy import PrivateCA, Tinyproxy


@pytest.fixture
def tls_box(tmp_path: Path, pki: PrivateCA) -> Iterator[Sandbox]:
    box = Sandbox(tmp_path / "sandbox", tls=(pki.cert, pki.key), ca=pki.ca_pem).start()
    assert box.base_url.startswith("https://")
    try:
        yield box
    finally:
        box.stop()


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[Tinyproxy]:
    folder = tmp_path / "proxy"
    folder.mkdir()
    p = Tinyproxy(folder).start()
    try:
        yield p
    finally:
        p.stop()
