"""TLS handshakes of our own (through the proxy, if any), and what an untrusted certificate says.

When verification fails, the operator needs the certificate's subject and issuer to know which CA
to trust (a company's TLS-inspecting proxy, usually). Python 3.11 hands out no certificate from a
failed handshake, so a second handshake without verification fetches it, and a small DER reader
takes the two names out (no dependency on `cryptography` for two strings).
"""

from __future__ import annotations

import base64
import socket
import ssl
from urllib.parse import unquote, urlsplit

import httpx

from daemon.errors import Kind, TransferError, Where
from daemon.net.transport import proxy_for, redact_url

_NAMES = {"2.5.4.3": "CN", "2.5.4.10": "O", "2.5.4.11": "OU", "2.5.4.6": "C",
          "2.5.4.7": "L", "2.5.4.8": "ST"}


class ProxyError(OSError):
    """The proxy refused or broke the CONNECT tunnel."""


def _der(data: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, start of content, end of content) of the DER element at `pos`."""
    tag, length = data[pos], data[pos + 1]
    pos += 2
    if length & 0x80:
        n = length & 0x7F
        length = int.from_bytes(data[pos:pos + n], "big")
        pos += n
    return tag, pos, pos + length


def _children(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    out = []
    while start < end:
        tag, s, e = _der(data, start)
        out.append((tag, s, e))
        start = e
    return out


def _oid(raw: bytes) -> str:
    parts = [raw[0] // 40, raw[0] % 40]
    value = 0
    for byte in raw[1:]:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            parts.append(value)
            value = 0
    return ".".join(map(str, parts))


def _name(data: bytes, start: int, end: int) -> str:
    parts = []
    for _, s, e in _children(data, start, end):  # SET of attributes
        for _, s2, e2 in _children(data, s, e):  # SEQUENCE { OID, value }
            (_, os_, oe), (_, vs, ve) = _children(data, s2, e2)[:2]
            key = _oid(data[os_:oe])
            parts.append(f"{_NAMES.get(key, key)}={data[vs:ve].decode('utf-8', 'replace')}")
    return ", ".join(parts)


def cert_names(der: bytes) -> tuple[str, str]:
    """(subject, issuer) of a DER certificate, as "CN=..., O=..."."""
    _, s, _ = _der(der, 0)  # Certificate
    _, ts, te = _der(der, s)  # TBSCertificate
    fields = _children(der, ts, te)
    if fields[0][0] == 0xA0:  # explicit version
        fields = fields[1:]
    # serial, signature algorithm, issuer, validity, subject
    issuer, subject = fields[2], fields[4]
    return _name(der, subject[1], subject[2]), _name(der, issuer[1], issuer[2])


def open_tunnel(host: str, port: int, proxy: str | None, ctx: ssl.SSLContext,
                timeout: float) -> socket.socket:
    """A TCP connection to host:port, directly or through an HTTP(S) proxy's CONNECT."""
    if not proxy:
        return socket.create_connection((host, port), timeout=timeout)
    p = urlsplit(proxy)
    phost = p.hostname or ""
    sock: socket.socket = socket.create_connection(
        (phost, p.port or (443 if p.scheme == "https" else 80)), timeout=timeout)
    try:
        if p.scheme == "https":
            sock = ctx.wrap_socket(sock, server_hostname=phost)
        target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        lines = [f"CONNECT {target} HTTP/1.1", f"Host: {target}"]
        if p.username is not None:
            cred = f"{unquote(p.username)}:{unquote(p.password or '')}".encode()
            lines.append(f"Proxy-Authorization: Basic {base64.b64encode(cred).decode()}")
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(4096)
            if not chunk or len(answer) > 65536:
                raise ProxyError(f"the proxy {redact_url(proxy)} closed the tunnel")
            answer += chunk
        status = answer.split(b"\r\n", 1)[0].decode("latin-1")
        if status.split(" ")[1:2] != ["200"]:
            raise ProxyError(f"the proxy {redact_url(proxy)} refused the tunnel to {target} "
                             f"({status.strip()})")
        return sock
    except BaseException:
        sock.close()
        raise


def handshake(host: str, port: int, proxy: str | None, ctx: ssl.SSLContext,
              timeout: float) -> ssl.SSLSocket:
    sock = open_tunnel(host, port, proxy, ctx, timeout)
    try:
        return ctx.wrap_socket(sock, server_hostname=host)
    except BaseException:
        sock.close()
        raise


def peer_names(host: str, port: int, proxy: str | None, timeout: float = 5.0,
               ctx: ssl.SSLContext | None = None) -> tuple[str, str]:
    """(subject, issuer) of the certificate `host` presents, unverified (just to read it)."""
    loose = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    loose.check_hostname = False
    loose.verify_mode = ssl.CERT_NONE
    with handshake(host, port, proxy, ctx or loose, timeout) as tls:
        der = tls.getpeercert(binary_form=True)
    if not der:
        raise ValueError("no certificate")
    return cert_names(der)


def verification_error(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, ssl.SSLCertVerificationError):
            return cur
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return None


def untrusted_message(host: str, port: int, proxy: str | None, why: str,
                      timeout: float = 5.0) -> str:
    try:
        subject, issuer = peer_names(host, port, proxy, timeout)
        names = f"certificate subject {subject or '(empty)'}, issuer {issuer or '(empty)'}"
    except (OSError, ssl.SSLError, ValueError, IndexError):
        names = "its certificate could not be read"
    return (f"the TLS certificate of {host} is not trusted ({why}; {names}); if this network "
            f"inspects TLS with its own CA, set [api] ca_file to that CA's PEM file")


def certificate_error(exc: BaseException, url: str | httpx.URL, where: Where,
                      proxy: str | None, timeout: float = 5.0) -> TransferError | None:
    """A TransferError(Kind.CERTIFICATE) when `exc` is a failed certificate verification."""
    cause = verification_error(exc)
    if cause is None:
        return None
    target = httpx.URL(str(url))
    host, port = target.host, target.port or 443
    via = proxy_for(target, proxy)
    why = cause.verify_message or cause.reason or "verification failed"
    return TransferError(where, Kind.CERTIFICATE,
                         untrusted_message(host, port, via, str(why), timeout))

