"""TLS and a forward proxy for the tests: a private CA (trustme) that signs a certificate for
127.0.0.1, and Debian's tinyproxy with Basic auth. The fixtures `pki` (tests/conftest.py),
`tls_box` and `proxy` (tests/e2e/conftest.py) are built from these."""

from __future__ import annotations

import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

import trustme
from support import free_port, wait_for

PROXY_USER, PROXY_PASSWORD = "lab", "pr0xy-s3cret"


@dataclass
class PrivateCA:
    ca_pem: Path
    cert: Path
    key: Path


def make_private_ca(folder: Path) -> PrivateCA:
    """A CA ("O=Lab Inspection CA") and its certificate for 127.0.0.1 ("O=Lab Sandbox"), as PEM
    files in `folder`: the CA, the certificate chain and the certificate's key."""
    folder.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="Lab Inspection CA")
    leaf = ca.issue_cert("127.0.0.1", "localhost", organization_name="Lab Sandbox")
    out = PrivateCA(folder / "ca.pem", folder / "cert.pem", folder / "key.pem")
    ca.cert_pem.write_to_path(str(out.ca_pem))
    leaf.private_key_pem.write_to_path(str(out.key))
    out.cert.write_bytes(b"".join(b.bytes() for b in leaf.cert_chain_pems))
    return out


@dataclass
class Tinyproxy:
    """tinyproxy in the foreground on a free loopback port, its log in a file."""

    dir: Path
    auth: bool = True
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Tinyproxy:
        self.port = free_port()
        self.log = self.dir / "tinyproxy.log"
        conf = self.dir / "tinyproxy.conf"
        lines = [f"Port {self.port}", "Listen 127.0.0.1", "Timeout 60", "MaxClients 50",
                 f'LogFile "{self.log}"', "LogLevel Info", "Allow 127.0.0.1",
                 f'PidFile "{self.dir / "tinyproxy.pid"}"']
        if self.auth:
            lines.append(f"BasicAuth {PROXY_USER} {PROXY_PASSWORD}")
        conf.write_text("\n".join(lines) + "\n")
        self.log.touch()
        self.log.chmod(0o666)  # tinyproxy may drop root for nobody before writing
        self.dir.chmod(0o777)
        self.popen = subprocess.Popen(["tinyproxy", "-d", "-c", str(conf)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def listening() -> bool:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return True
            except OSError:
                assert self.popen is not None and self.popen.poll() is None, self.log.read_text()
                return False

        wait_for(listening, 15, what="tinyproxy to listen")
        return self

    @property
    def url(self) -> str:
        cred = f"{PROXY_USER}:{PROXY_PASSWORD}@" if self.auth else ""
        return f"http://{cred}127.0.0.1:{self.port}"

    def connects(self, port: int) -> int:
        return self.log.read_text(errors="replace").count(f"CONNECT 127.0.0.1:{port}")

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.terminate()
            self.popen.wait(10)
